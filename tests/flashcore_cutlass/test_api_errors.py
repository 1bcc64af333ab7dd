"""Input checks of the public API: every error is raised before the runtime (and a GPU) is
needed, so these run on CPU tensors."""

import re

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


def test_head_dim_96(fn):
    q, k, v = qkv(d=96)
    raises(fn, ValueError, "head_dim 96 is not supported; supported: (64, 128, 256)", q, k, v)


@pytest.mark.parametrize(
    "k_shape",
    [(2, 2, 8, 64), (1, 3, 8, 64), (1, 2, 8, 128)],
    ids=["batch", "heads", "head_dim"],
)
def test_key_does_not_match_query(fn, k_shape):
    q, _, _ = qkv()
    k = torch.randn(k_shape, dtype=torch.float16)
    raises(fn, ValueError, f"key shape {k_shape} does not match query (1, 2, 8, 64) (need (B, H, Sk, D))",
           q, k, k.clone())


@pytest.mark.parametrize("v_shape", [(1, 2, 9, 64), (1, 2, 8, 128), (1, 1, 8, 64)])
def test_value_shape_must_equal_key_shape(fn, v_shape):
    q, k, _ = qkv()
    v = torch.randn(v_shape, dtype=torch.float16)
    raises(fn, ValueError, f"value shape {v_shape} must equal key shape (1, 2, 8, 64)", q, k, v)


def test_empty_keys(fn):
    q, k, v = qkv(sk=0)
    raises(fn, ValueError, "key/value sequence length is 0", q, k, v)


def test_non_contiguous_last_dim(fn):
    q, k, v = qkv(sq=64)
    qt = q.transpose(-1, -2)
    assert qt.shape == q.shape and qt.stride(-1) != 1
    raises(fn, ValueError, f"query must have a contiguous last dimension (stride 1), got strides {qt.stride()}",
           qt, k, v)


def test_misaligned_storage_offset(fn):
    q, k, v = qkv()
    flat = torch.randn(k.numel() + 1, dtype=torch.float16)
    k_off = flat[1:].view(k.shape)
    assert k_off.storage_offset() == 1 and k_off.is_contiguous()
    err = raises(fn, ValueError, "key must be 16-byte aligned", q, k_off, v)
    assert "data_ptr % 16 = 2" in str(err)


def test_misaligned_row_stride(fn):
    q, k, v = qkv()
    wide = torch.randn(1, 2, 8, 68, dtype=torch.float16)  # 136-byte rows
    v_slice = wide[..., :64]
    err = raises(fn, ValueError, "value must be 16-byte aligned with strides that are multiples of 8 elements",
                 q, k, v_slice)
    assert re.search(r"strides \(1088, 544, 68, 1\)", str(err))


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
    raises(sdpa, NotImplementedError, "does not support grouped-query attention (enable_gqa=True)", q, k, v,
           enable_gqa=True)
    # The drop-in's defaults reach the input checks.
    raises(sdpa, ValueError, "flashcore runs on CUDA devices only", q, k, v, attn_mask=None, dropout_p=0.0,
           is_causal=True, scale=0.5, enable_gqa=False)
