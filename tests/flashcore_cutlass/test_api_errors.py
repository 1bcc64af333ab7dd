"""Input checks of the public API: every error is raised before the runtime (and a GPU) is
needed, so these run on CPU tensors."""


import pytest
import torch

import flashcore_cutlass as fc
from flashcore_cutlass import api

FUNCTIONS = {
    "attention": lambda q, k, v, **kw: fc.attention(q, k, v, **kw),
    "sdpa": lambda q, k, v, **kw: fc.scaled_dot_product_attention(q, k, v, **kw),
}


@pytest.fixture(autouse=True)
def no_runtime(monkeypatch):
    """Validation must come before loading the extension: fail loudly if it is reached."""
    def unreachable():
        raise AssertionError("get_runtime() called before the inputs were rejected")

    monkeypatch.setattr(api, "get_runtime", unreachable)
    # A shape dispatched earlier in this process (e.g. by GPU tests) would skip the Python checks.
    monkeypatch.setattr(api, "_dispatch_cache", {})


@pytest.fixture(params=sorted(FUNCTIONS))
def fn(request):
    return FUNCTIONS[request.param]


def qkv(b=1, h=2, sq=8, sk=8, d=64, dtype=torch.float16):
    return (torch.randn(b, h, s, d).to(dtype) for s in (sq, sk, sk))


def raises(fn, exc, message, *args, **kwargs):
    with pytest.raises(exc) as excinfo:
        fn(*args, **kwargs)
    assert message in str(excinfo.value), str(excinfo.value)
    return excinfo.value


def test_valid_cpu_inputs_fail_only_on_device(fn):
    q, k, v = qkv()
    err = raises(fn, ValueError, "query is on cpu; flashcore runs on CUDA devices only", q, k, v)
    assert "CUDA" in str(err)


@pytest.mark.parametrize("which", ["query", "key", "value"])
def test_wrong_rank(fn, which):
    tensors = dict(zip(["query", "key", "value"], qkv()))
    tensors[which] = tensors[which][0]  # 3-D
    raises(fn, ValueError, f"{which} must be 4-D (batch, heads, seqlen, head_dim), got shape (2, 8, 64)",
           *tensors.values())
    tensors[which] = torch.randn(1, 1, 2, 8, 64, dtype=torch.float16)
    raises(fn, ValueError, f"{which} must be 4-D", *tensors.values())


def test_float32_is_a_type_error(fn):
    q, k, v = qkv(dtype=torch.float32)
    raises(fn, TypeError, "query has dtype torch.float32; supported: torch.float16, torch.bfloat16", q, k, v)
    q, k, v = qkv()
    raises(fn, TypeError, "value has dtype torch.float32", q, k, v.float())


def test_mixed_dtypes(fn):
    q, k, v = qkv()
    raises(fn, TypeError, "query, key, value dtypes differ: torch.float16, torch.bfloat16, torch.float16",
           q, k.to(torch.bfloat16), v)


def test_not_a_tensor(fn):
    q, k, v = qkv()
    raises(fn, TypeError, "key must be a torch.Tensor, got list", q, k.tolist(), v)


@pytest.mark.parametrize("d", [100, 4, 264])
def test_head_dim_not_a_multiple_of_8_up_to_256(fn, d):
    q, k, v = qkv(d=d)
    raises(fn, ValueError, f"head_dim {d} is not supported; supported: multiples of 8 up to 256", q, k, v)


@pytest.mark.parametrize("k_shape", [(2, 2, 8, 64), (1, 2, 8, 128)], ids=["batch", "head_dim"])
def test_key_does_not_match_query(fn, k_shape):
    q, _, _ = qkv()
    k = torch.randn(k_shape, dtype=torch.float16)
    raises(fn, ValueError, f"key shape {k_shape} does not match query (1, 2, 8, 64) (need (B, Hkv, Sk, D))",
           q, k, k.clone())


# ---------------------------------------------------------------------------------------------
# Grouped-query attention: key/value may have Hkv heads, H a multiple of Hkv.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hq,hkv", [(32, 8), (8, 1), (28, 4), (4, 4)], ids=["gqa32/8", "mqa8/1", "gqa28/4", "mha"])
def test_head_counts_that_divide_reach_the_device_check(hq, hkv):
    q = torch.randn(1, hq, 8, 64, dtype=torch.float16)
    k, v = (torch.randn(1, hkv, 8, 64, dtype=torch.float16) for _ in range(2))
    raises(fc.attention, ValueError, "flashcore runs on CUDA devices only", q, k, v)
    raises(fc.attention, ValueError, "flashcore runs on CUDA devices only", q, k, v, causal="bottom_right")
    raises(fc.scaled_dot_product_attention, ValueError, "flashcore runs on CUDA devices only", q, k, v,
           enable_gqa=True)


@pytest.mark.parametrize("hq,hkv", [(6, 4), (2, 3), (8, 3), (4, 0)])
def test_head_counts_that_do_not_divide(fn, hq, hkv):
    q = torch.randn(1, hq, 8, 64, dtype=torch.float16)
    k = torch.randn(1, hkv, 8, 64, dtype=torch.float16)
    kwargs = {} if fn is FUNCTIONS["attention"] else {"enable_gqa": True}
    raises(fn, ValueError, f"query has {hq} heads and key/value {hkv}: the query head count must be a multiple of "
           "the key/value head count (grouped-query attention)", q, k, k.clone(), **kwargs)


def test_key_and_value_head_counts_must_match(fn):
    q = torch.randn(1, 8, 8, 64, dtype=torch.float16)
    k, v = torch.randn(1, 2, 8, 64, dtype=torch.float16), torch.randn(1, 4, 8, 64, dtype=torch.float16)
    kwargs = {} if fn is FUNCTIONS["attention"] else {"enable_gqa": True}
    raises(fn, ValueError, "value shape (1, 4, 8, 64) must match key shape (1, 2, 8, 64) but for the last dimension",
           q, k, v, **kwargs)


def test_sdpa_needs_enable_gqa_for_other_head_counts_like_torch():
    """torch SDPA refuses key/value with another head count unless enable_gqa=True, but broadcasts
    a single key/value head (checked against torch itself on CPU, float32)."""
    sdpa, torch_sdpa = fc.scaled_dot_product_attention, torch.nn.functional.scaled_dot_product_attention
    q = torch.randn(1, 8, 8, 64, dtype=torch.float16)
    for hkv, torch_accepts in ((2, False), (4, False), (1, True), (8, True)):
        k = torch.randn(1, hkv, 8, 64, dtype=torch.float16)
        try:
            torch_sdpa(q.float(), k.float(), k.float())
            accepted = True
        except RuntimeError:
            accepted = False
        assert accepted == torch_accepts, hkv
        if torch_accepts:
            raises(sdpa, ValueError, "flashcore runs on CUDA devices only", q, k, k)
        else:
            raises(sdpa, ValueError, f"query has 8 heads and key/value {hkv}: pass enable_gqa=True", q, k, k)
            raises(sdpa, ValueError, f"query has 8 heads and key/value {hkv}: pass enable_gqa=True", q, k, k,
                   enable_gqa=False, is_causal=True)
        raises(sdpa, ValueError, "flashcore runs on CUDA devices only", q, k, k, enable_gqa=True)


@pytest.mark.parametrize("v_shape", [(1, 2, 9, 64), (2, 2, 8, 64), (1, 1, 8, 64)])
def test_value_shape_must_match_key_shape(fn, v_shape):
    q, k, _ = qkv()
    v = torch.randn(v_shape, dtype=torch.float16)
    raises(fn, ValueError, f"value shape {v_shape} must match key shape (1, 2, 8, 64) but for the last dimension", q,
           k, v)


@pytest.mark.parametrize("dv", [128, 32, 8, 256])
def test_value_head_dim_may_differ(fn, dv):
    """A value head dim of its own (a multiple of 8 up to 256) passes every check; on the CPU
    the call then stops at the device rule."""
    q, k, _ = qkv()
    v = torch.randn(1, 2, 8, dv, dtype=torch.float16)
    raises(fn, ValueError, "query is on cpu; flashcore runs on CUDA devices only", q, k, v)


@pytest.mark.parametrize("dv", [12, 0, 264])
def test_value_head_dim_rule(fn, dv):
    q, k, _ = qkv()
    v = torch.randn(1, 2, 8, dv, dtype=torch.float16)
    raises(fn, ValueError, f"value head_dim {dv} is not supported; supported: multiples of 8 up to 256", q, k, v)


def test_empty_keys_need_a_device_too(fn):
    q, k, v = qkv(sk=0)
    raises(fn, ValueError, "query is on cpu; flashcore runs on CUDA devices only", q, k, v)


def test_non_contiguous_last_dim(fn):
    q, k, v = qkv(sq=64)
    qt = q.transpose(-1, -2)
    assert qt.shape == q.shape and qt.stride(-1) != 1
    raises(fn, ValueError, f"query must have a contiguous last dimension (stride 1), got strides {qt.stride()}",
           qt, k, v)


def _offset_by_one(t):
    flat = torch.randn(t.numel() + 1, dtype=t.dtype)
    view = flat[1:].view(t.shape)
    assert view.storage_offset() == 1 and view.is_contiguous()
    return view


def test_misaligned_inputs_pass_the_layout_checks(fn):
    """Alignment is no input error: dispatch sends such inputs to a family that takes them
    (tests/flashcore_cutlass/test_registry.py), so they reach the device check."""
    q, k, v = qkv()
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, _offset_by_one(k), v)
    wide = torch.randn(1, 2, 8, 68, dtype=torch.float16)  # 136-byte rows
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, k, wide[..., :64])


def test_aligned16_reads_pointers_and_strides():
    q, k, v = qkv()
    assert api._aligned16(q, k, v)
    assert not api._aligned16(q, _offset_by_one(k), v)
    assert not api._aligned16(q, k, torch.randn(1, 2, 8, 68, dtype=torch.float16)[..., :64])  # row stride 68
    odd_heads = torch.randn(2048, dtype=torch.float16).as_strided((1, 2, 8, 64), (1029, 514, 64, 1))
    assert not api._aligned16(odd_heads, k, v)  # head stride 514 elements
    # The odd batch stride alone does not count: a lone batch is never stepped along.
    assert api._aligned16(torch.randn(4096, dtype=torch.float16).as_strided((1, 2, 8, 64), (1029, 520, 64, 1)), k, v)
    fused = torch.randn(1, 2, 8, 3 * 64, dtype=torch.float16)
    assert api._aligned16(*fused.split(64, dim=-1))  # a fused QKV slice stays aligned


def test_the_shape_key_tells_aligned_from_misaligned():
    q, k, v = qkv()
    assert api._shape_key(q, k, v, False) != api._shape_key(q, _offset_by_one(k), v, False)
    assert api._shape_key(q, k, v, False)[:-1] == api._shape_key(q, _offset_by_one(k), v, False)[:-1]


def test_aligned_strided_slices_pass_the_layout_checks(fn):
    # A fused QKV tensor sliced along the last dim: strides free, 16-byte aligned.
    qkv_fused = torch.randn(1, 2, 8, 3 * 64, dtype=torch.float16)
    q, k, v = qkv_fused.split(64, dim=-1)
    assert not q.is_contiguous()
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, k, v)


def test_devices_differ(fn):
    q, k, v = qkv()
    raises(fn, ValueError, "query, key, value are on different devices: meta, cpu, cpu", q.to("meta"), k, v)


def test_sdpa_unsupported_arguments():
    q, k, v = qkv()
    sdpa = fc.scaled_dot_product_attention
    raises(sdpa, NotImplementedError, "does not support attn_mask (only is_causal)", q, k, v,
           attn_mask=torch.ones(8, 8, dtype=torch.bool))
    raises(sdpa, NotImplementedError, "does not support dropout (dropout_p=0.1)", q, k, v, dropout_p=0.1)
    raises(sdpa, ValueError, "flashcore runs on CUDA devices only", q, k, v, enable_gqa=True)  # supported now
    # The drop-in's defaults reach the input checks.
    raises(sdpa, ValueError, "flashcore runs on CUDA devices only", q, k, v, attn_mask=None, dropout_p=0.0,
           is_causal=True, scale=0.5, enable_gqa=False)


# ---------------------------------------------------------------------------------------------
# Arguments other than the tensors: types and values, checked on every call (cached or not).
# ---------------------------------------------------------------------------------------------

NOT_BOOLS = ["bottom_right", 1, 0, None, 1.0, torch.tensor(True)]
NOT_BOOL_IDS = ["str", "int1", "int0", "None", "float", "tensor"]


@pytest.mark.parametrize("value", NOT_BOOLS[1:], ids=NOT_BOOL_IDS[1:])
def test_causal_must_be_a_bool_or_an_alignment(value):
    q, k, v = qkv()
    err = raises(fc.attention, TypeError, "causal must be a bool, 'top_left' or 'bottom_right', got", q, k, v,
                 causal=value)
    assert type(value).__name__ in str(err)


@pytest.mark.parametrize("value", ["bottom-right", "BOTTOM_RIGHT", "top-left", "none", "", "causal"])
def test_causal_strings_other_than_the_alignments(value):
    q, k, v = qkv()
    raises(fc.attention, ValueError, f"causal must be False, True, 'top_left' or 'bottom_right', got {value!r}",
           q, k, v, causal=value)


@pytest.mark.parametrize("value", NOT_BOOLS, ids=NOT_BOOL_IDS)
def test_is_causal_must_be_a_bool(value):
    """The drop-in's is_causal is torch's: a bool (top-left), no alignment strings."""
    q, k, v = qkv()
    err = raises(fc.scaled_dot_product_attention, TypeError, "is_causal must be a bool, got", q, k, v, is_causal=value)
    assert type(value).__name__ in str(err)


@pytest.mark.parametrize("value", [False, True, "top_left", "bottom_right"])
def test_causal_values_reach_the_tensor_checks(value):
    q, k, v = qkv()
    raises(fc.attention, ValueError, "flashcore runs on CUDA devices only", q, k, v, causal=value)


def test_causal_names_the_mask_the_op_gets():
    assert [api._as_causal(c) for c in (False, True, "top_left", "bottom_right")] == [
        "none", "top_left", "top_left", "bottom_right"]
    np = pytest.importorskip("numpy")
    assert api._as_causal(np.bool_(True)) == "top_left" and api._as_causal(np.bool_(False)) == "none"


@pytest.mark.parametrize("value", NOT_BOOLS, ids=NOT_BOOL_IDS)
def test_return_lse_and_enable_gqa_must_be_bools(value):
    q, k, v = qkv()
    raises(fc.attention, TypeError, "return_lse must be a bool, got", q, k, v, return_lse=value)
    raises(fc.scaled_dot_product_attention, TypeError, "enable_gqa must be a bool, got", q, k, v, enable_gqa=value)


def test_numpy_bools_are_bools(fn):
    np = pytest.importorskip("numpy")
    q, k, v = qkv()
    key = "causal" if fn is FUNCTIONS["attention"] else "is_causal"
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, k, v, **{key: np.bool_(True)})


@pytest.mark.parametrize("causal", [False, True])
def test_bools_reach_the_tensor_checks(fn, causal):
    q, k, v = qkv()
    key = "causal" if fn is FUNCTIONS["attention"] else "is_causal"
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, k, v, **{key: causal})


@pytest.mark.parametrize("scale", ["0.5", True, False, torch.tensor(0.5), [0.5], 1j],
                         ids=["str", "True", "False", "tensor", "list", "complex"])
def test_scale_must_be_a_real_number(fn, scale):
    q, k, v = qkv()
    raises(fn, TypeError, "scale must be None or a real number (int or float), got", q, k, v, scale=scale)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), float("-inf"), 1e39, -1e39, 10**400],
                         ids=["nan", "inf", "-inf", "1e39", "-1e39", "huge_int"])
def test_scale_must_be_finite_in_float32(fn, scale):
    q, k, v = qkv()
    raises(fn, ValueError, "scale must be finite and within float32 range, got", q, k, v, scale=scale)


@pytest.mark.parametrize("scale", [None, 0.125, -0.125, 0.0, -0.0, 0, 3, -2, 1e-40, 1e30, 3.4e38],
                         ids=["None", "pos", "neg", "zero", "negzero", "int0", "int3", "int-2", "subnormal", "large",
                              "fltmax"])
def test_any_finite_scale_is_accepted(fn, scale):
    q, k, v = qkv()
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, k, v, scale=scale)


@pytest.mark.parametrize("dropout_p,exc,message", [
    ("0.1", TypeError, "dropout_p must be a real number, got str"),
    (True, TypeError, "dropout_p must be a real number, got bool"),
    (float("nan"), ValueError, "dropout_p must be in [0, 1], got nan"),
    (1.5, ValueError, "dropout_p must be in [0, 1], got 1.5"),
    (-0.1, ValueError, "dropout_p must be in [0, 1]"),
    (0.5, NotImplementedError, "does not support dropout (dropout_p=0.5)"),
])
def test_sdpa_dropout_checks(dropout_p, exc, message):
    q, k, v = qkv()
    raises(fc.scaled_dot_product_attention, exc, message, q, k, v, dropout_p=dropout_p)


def test_sdpa_zero_dropout_as_int_is_fine():
    q, k, v = qkv()
    raises(fc.scaled_dot_product_attention, ValueError, "flashcore runs on CUDA devices only", q, k, v, dropout_p=0)


def test_cached_shapes_still_check_the_arguments(monkeypatch):
    """The per-shape cache skips the tensor checks (the op redoes them in C++), never the
    argument checks: a cached shape with causal="bottom-right" or scale=nan is still refused,
    and valid arguments reach the op normalised (float scale; the causal offset: 0 for top-left,
    Sk - Sq for bottom-right)."""
    q, k, v = qkv(sq=8, sk=13)
    calls = []

    unused = []  # each call's lse_unused: attention() drops the lse unless return_lse

    def fake_fwd(vid, q, k, v, scale, out, lse, causal_offset, *window_softcap_packing_lse_unused):
        window_softcap = window_softcap_packing_lse_unused[:2]
        if len(window_softcap_packing_lse_unused) > 2:
            assert window_softcap_packing_lse_unused[2:5] == (None, None, 0)  # no packed sequences
            unused.append(window_softcap_packing_lse_unused[-1])
        calls.append((vid, scale, causal_offset, *window_softcap))
        return q, None

    def fake_fwd_dense(vid, q, k, v, scale, offset, lse_unused):
        unused.append(lse_unused)
        return fake_fwd(vid, q, k, v, scale, None, None, offset)

    monkeypatch.setattr(api, "_fwd", fake_fwd)
    monkeypatch.setattr(api, "_fwd_dense", fake_fwd_dense)
    # The cache keeps decisions per mask key: masked or not, the alignment, window and softcap.
    for causal, window, softcap, vid in (("top_left", None, 0.0, 7), ("bottom_right", None, 0.0, 7),
                                         ("none", None, 0.0, 8), ("none", None, 50.0, 8),
                                         ("none", (3, 2), 0.0, 7), ("top_left", (3, 0), 30.0, 7),
                                         ("bottom_right", (4, 0), 0.0, 7)):
        api._dispatch_cache[api._shape_key(q, k, v, api._mask_key(causal, window, softcap))] = vid
    raises(fc.attention, ValueError, "causal must be False, True, 'top_left' or 'bottom_right', got 'bottom-right'",
           q, k, v, causal="bottom-right")
    raises(fc.attention, TypeError, "causal must be a bool, 'top_left' or 'bottom_right', got int 1", q, k, v,
           causal=1)
    raises(fc.attention, ValueError, "scale must be finite", q, k, v, causal=True, scale=float("nan"))
    raises(fc.attention, TypeError, "scale must be None or a real number", q, k, v, causal=True, scale="1")
    raises(fc.attention, TypeError, "return_lse must be a bool", q, k, v, causal=True, return_lse="yes")
    raises(fc.scaled_dot_product_attention, TypeError, "is_causal must be a bool", q, k, v, is_causal="yes")
    raises(fc.scaled_dot_product_attention, TypeError, "is_causal must be a bool", q, k, v, is_causal="bottom_right")
    assert calls == []
    fc.attention(q, k, v, causal=True, scale=2)
    fc.attention(q, k, v, causal="top_left")
    fc.attention(q, k, v, causal="bottom_right", scale=0.5)
    fc.attention(q, k, v, scale=-0.5)
    fc.attention(q, k, v)
    fc.attention(q, k, v, return_lse=True)
    assert calls == [(7, 2.0, 0), (7, 64 ** -0.5, 0), (7, 0.5, 13 - 8), (8, -0.5, 0), (8, 64 ** -0.5, 0),
                     (8, 64 ** -0.5, 0)]
    assert unused == [True] * 5 + [False]  # the kernel may skip an exact lse only where none is returned
    assert all(type(c[1]) is float for c in calls)
    # Windows and softcap: checked on cached shapes too, and passed as the two diagonals.
    calls.clear()
    raises(fc.attention, ValueError, "window left must be >= 0, or -1 for unbounded, got -2", q, k, v, window=(-2, 0))
    raises(fc.attention, ValueError, "softcap must be a positive finite number", q, k, v, softcap=-1.0)
    assert calls == []
    fc.attention(q, k, v, window=(3, 2))  # no causal: bottom-right, offset 13 - 8
    fc.attention(q, k, v, causal=True, window=(3, 0), softcap=30)
    fc.attention(q, k, v, causal="bottom_right", window=(4, -1))
    fc.attention(q, k, v, softcap=50.0, return_lse=True)
    assert unused[-4:] == [True, True, True, False]
    assert calls == [(7, 64 ** -0.5, 5 + 2, 5 - 3, 0.0), (7, 64 ** -0.5, 0, -3, 30.0), (7, 64 ** -0.5, 5, 1, 0.0),
                     (8, 64 ** -0.5, 0, None, 50.0)]


def test_a_cached_decision_does_not_skip_the_head_count_check(monkeypatch):
    """A shape dispatched with 2 key/value heads: the same call with 3 (not a divisor of 4) is
    a new key, so the Python check runs and reports the rule (not a C++ or kernel error)."""
    monkeypatch.setattr(api, "_fwd", lambda *args: pytest.fail("the op was reached"))
    monkeypatch.setattr(api, "_fwd_dense", lambda *args: pytest.fail("the op was reached"))
    q = torch.randn(1, 4, 8, 64, dtype=torch.float16)
    k2, k3 = torch.randn(1, 2, 8, 64, dtype=torch.float16), torch.randn(1, 3, 8, 64, dtype=torch.float16)
    api._dispatch_cache[api._shape_key(q, k2, k2, False)] = 1
    assert api._shape_key(q, k3, k3, False) not in api._dispatch_cache
    raises(fc.attention, ValueError, "query has 4 heads and key/value 3", q, k3, k3)


# ---------------------------------------------------------------------------------------------
# Empty problems: like SDPA, empty (or, without keys, zero) results; nothing is dispatched.
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def any_device(monkeypatch):
    """Let CPU tensors through the device check: the empty path never needs a GPU."""
    monkeypatch.setattr(api, "_check_device", lambda q, k, v: None)


@pytest.mark.parametrize("b,h,sq,sk", [(0, 2, 8, 8), (1, 0, 8, 8), (1, 2, 0, 8), (1, 2, 0, 0)],
                         ids=["B0", "H0", "Sq0", "Sq0Sk0"])
def test_empty_problems_give_empty_results(any_device, b, h, sq, sk):
    q, k, v = qkv(b, h, sq, sk)
    out, lse = fc.attention(q, k, v, return_lse=True)
    assert out.shape == (b, h, sq, 64) and out.dtype == q.dtype and out.device == q.device
    assert lse.shape == (b, h, sq) and lse.dtype == torch.float32
    assert fc.scaled_dot_product_attention(q, k, v).shape == (b, h, sq, 64)
    assert api._dispatch_cache == {}  # never cached, never dispatched (get_runtime is unreachable)


def test_no_keys_give_zeros_and_minus_inf_lse_like_sdpa(any_device):
    q, k, v = qkv(1, 2, 8, 0)
    out, lse = fc.attention(q, k, v, causal=True, return_lse=True)
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert torch.equal(out.float(), expected) and not out.any()
    assert torch.equal(lse, torch.full((1, 2, 8), float("-inf")))
    assert torch.equal(fc.attention(q, k, v), out)
    assert api._dispatch_cache == {}


def test_empty_problems_still_check_arguments_and_grad(any_device):
    q, k, v = qkv(0, 2, 8, 8)
    raises(fc.attention, ValueError, "causal must be False, True, 'top_left' or 'bottom_right'", q, k, v, causal="yes")
    raises(fc.attention, ValueError, "head_dim 100 is not supported", *qkv(0, 2, 8, 8, d=100))
    q.requires_grad_(True)
    raises(fc.attention, NotImplementedError, "forward pass only", q, k, v)
    with torch.no_grad():
        assert fc.attention(q, k, v).shape == (0, 2, 8, 64)


# ---------------------------------------------------------------------------------------------
# Sizes beyond the kernels' 32-bit indexing: expanded (stride-0) views cost no memory.
# ---------------------------------------------------------------------------------------------

def test_seqlen_beyond_int_range(fn):
    q, k, v = qkv()
    long_k = k[:, :, :1].expand(-1, -1, 2**30 + 1, -1)
    raises(fn, ValueError, "seqlen_q = 8, seqlen_k = 1073741825: flashcore kernels index sequences with 32-bit ints, "
           "at most 1073741824 (2^30) rows", q, long_k, long_k)
    long_q = q[:, :, :1].expand(-1, -1, 2**31, -1)
    raises(fn, ValueError, "seqlen_q = 2147483648, seqlen_k = 8", long_q, k, v)
    # At the limit itself only the device is missing.
    edge_k = k[:, :, :1].expand(-1, -1, 2**30, -1)
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, edge_k, edge_k)


def test_batch_heads_beyond_int_range(fn):
    one = torch.randn(1, 1, 1, 64, dtype=torch.float16)
    q = one.expand(65536, 32768, 1, 64)
    raises(fn, ValueError, "batch * heads = 65536 * 32768 exceeds the kernels' 32-bit range (at most 2147483647)",
           q, q, q)
    # Beyond gridDim.y/z (65535) but within int range: the grid folds, only the device is missing.
    q = one.expand(70000, 3, 1, 64)
    raises(fn, ValueError, "flashcore runs on CUDA devices only", q, q, q)
