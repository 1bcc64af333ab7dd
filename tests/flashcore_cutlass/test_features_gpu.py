"""Sliding windows, logit softcap, padded head dims and a value head dim of its own on the GPU, against the fp32 reference:
each family's representative variants directly (the binding's raw diagonals), and the public API
(dispatch, alignments, GQA, combinations, odd lengths). Needs a Hopper GPU (H100/H200)."""

from __future__ import annotations

import math

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows, visible_range
from gpu_support import axis_params, representative_params

pytestmark = pytest.mark.gpu
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_representatives = representative_params


def rounded_baseline(q, k, v, lo, hi, scale, softcap, rows):
    """What a correct low-precision kernel may give: the fp32 math with P rounded to the input
    dtype before P.V (as every flash kernel does). Sets the tolerance (SDPA cannot softcap)."""
    s = q[:, :, rows].float() @ k.float().repeat_interleave(q.shape[1] // k.shape[1], 1).transpose(-1, -2) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    cols = torch.arange(k.shape[2], device=q.device)[None, :]
    hidden = torch.zeros(len(rows), k.shape[2], dtype=torch.bool, device=q.device)
    if hi is not None:
        hidden |= cols > rows[:, None] + hi
    if lo is not None:
        hidden |= cols < rows[:, None] + lo
    s = s.masked_fill(hidden, float("-inf"))
    m = s.amax(-1, keepdim=True).clamp_min(-1e30)
    p = torch.exp(s - m)
    vv = v.float().repeat_interleave(q.shape[1] // v.shape[1], 1)
    out = (p.to(q.dtype).float() @ vv) / p.sum(-1, keepdim=True).clamp_min(1e-30)
    return out.to(q.dtype).float()


def check(run, q, k, v, causal, scale, window=None, softcap=None):
    """run(out, lse) on NaN-poisoned results vs the reference: max|out - ref| within 2x the
    rounded baseline's error + 1e-3, LSE within 1e-3 relative, and rows that see no key exactly
    out = 0, lse = +inf."""
    b, h, sq, _ = q.shape
    out = torch.full((b, h, sq, v.shape[3]), float("nan"), device="cuda", dtype=q.dtype)
    lse = torch.full((b, h, sq), float("nan"), device="cuda", dtype=torch.float32)
    run(out, lse)
    torch.cuda.synchronize()
    assert not torch.isnan(out).any(), "output has NaN (unwritten or invalid)"
    assert not torch.isnan(lse).any(), "lse has NaN (unwritten or invalid)"
    rows = sample_rows(sq, count=512, device=q.device)
    ref_out, ref_lse = reference_attention(q, k, v, causal, scale=scale, rows=rows, window=window, softcap=softcap)
    lo, hi = visible_range(causal, window, sq, k.shape[2])
    base = rounded_baseline(q, k, v, lo, hi, scale, softcap, rows)
    empty = torch.isinf(ref_lse)
    base_err = (base - ref_out)[~empty[..., None].expand_as(ref_out)].abs().max().item() if (~empty).any() else 0.0
    err = (out[:, :, rows].float() - ref_out).abs().max().item()
    tol = 2 * base_err + 1e-3
    assert err <= tol, f"max|out-ref| = {err:.3g} > {tol:.3g} (2x the rounded baseline's {base_err:.3g} + 1e-3)"
    ours = lse[:, :, rows]
    assert torch.equal(torch.isinf(ours), empty), "rows without keys must have lse = +inf, the others finite"
    if empty.any():
        assert (ours[empty] > 0).all() and (out[:, :, rows][empty] == 0).all(), "rows without keys: out 0, lse +inf"
    if (~empty).any():
        rel = ((ours[~empty] - ref_lse[~empty]).abs() / ref_lse[~empty].abs().clamp_min(1.0)).max().item()
        assert rel <= 1e-3, f"lse relative error {rel:.3g} > 1e-3"
    return empty.any().item()


# (Sq, Sk, causal alignment, window) for the masked variants: windows one-sided and two-sided,
# narrower and wider than a tile, with both alignments, odd lengths, Sq != Sk both ways, and
# windows that leave rows without keys (bottom-right, Sq > Sk).
WINDOW_CASES = [
    (300, 300, True, (0, 0)),
    (300, 300, True, (5, 0)),
    (333, 333, True, (64, 0)),
    (1000, 1000, True, (200, -1)),
    (200, 700, "bottom_right", (100, -1)),
    (700, 200, "bottom_right", (30, 0)),
    (257, 1000, False, (100, 50)),
    (1000, 257, False, (3, 140)),
    (513, 513, False, (-1, 70)),
    (513, 513, False, (129, -1)),
    (17, 4096, False, (1000, 0)),
]


def _case_id(case):
    sq, sk, causal, window = case
    return f"{sq}x{sk}-{causal}-w{window[0]}_{window[1]}"


@pytest.mark.parametrize("case", WINDOW_CASES, ids=_case_id)
@pytest.mark.parametrize("variant", _representatives())
def test_variant_window(rt, variant, case):
    """A masked variant given the two diagonals directly (the binding's arguments)."""
    check_variant_window(rt, variant, case)


@pytest.mark.parametrize("case", WINDOW_CASES, ids=_case_id)
@pytest.mark.parametrize("variant", axis_params("wg_keys", "per-warpgroup key range"))
def test_wg_keys_variant_window(rt, variant, case):
    """Every built variant whose warpgroups walk their own key ranges: windows skip tiles at both ends
    of a warpgroup's range and leave some warpgroups of a tile without keys (bottom-right, Sq > Sk)."""
    check_variant_window(rt, variant, case)


def check_variant_window(rt, variant, case):
    cfg = config_from_name(variant)
    if not cfg.causal:
        pytest.skip("windows run on the masked (causal) variants")
    sq, sk, causal, window = case
    if cfg.family == "scalar" and sq * sk > 300 * 1000:
        pytest.skip("the scalar rung is slow; smaller cases cover it")
    gen = torch.Generator(device="cuda").manual_seed(11)
    q, k, v = random_qkv(2, 3, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)
    scale = 1 / math.sqrt(cfg.head_dim)
    lo, hi = visible_range(causal, window, sq, sk)
    hi = sk if hi is None else hi  # an open right side: every key (the binding clamps)
    check(lambda out, lse: rt.run(variant, q, k, v, scale, out, lse, hi, lo), q, k, v, causal, scale, window)


@pytest.mark.parametrize("softcap", [5.0, 30.0])
@pytest.mark.parametrize("variant", _representatives())
def test_variant_softcap(rt, variant, softcap):
    cfg = config_from_name(variant)
    gen = torch.Generator(device="cuda").manual_seed(12)
    # Scores large enough for the cap to matter (|q.k| * scale up to ~20).
    q, k, v = random_qkv(2, 3, 200, 333, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)
    q = q * 2
    scale = 1 / math.sqrt(cfg.head_dim)
    window = (40, 0) if cfg.causal else None
    lo, hi = visible_range(cfg.causal, window, 200, 333)
    run = lambda out, lse: rt.run(variant, q, k, v, scale, out, lse, hi or 0, lo, softcap)  # noqa: E731
    check(run, q, k, v, cfg.causal, scale, window, softcap)


@pytest.mark.parametrize("variant", _representatives())
def test_variant_softcap_changes_the_result(rt, variant):
    """The cap is applied (not a no-op): capped and uncapped outputs differ by far more than the
    tolerance, and the capped LSE is the capped scores' (checked in test_variant_softcap)."""
    cfg = config_from_name(variant)
    gen = torch.Generator(device="cuda").manual_seed(13)
    q, k, v = random_qkv(1, 2, 128, 128, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)
    q = q * 3
    plain, _ = rt.run(variant, q, k, v, 1.0)
    capped, _ = rt.run(variant, q, k, v, 1.0, None, None, 0, None, 2.0)
    assert (plain.float() - capped.float()).abs().max().item() > 0.1


PADDED_DIMS = [8, 32, 40, 72, 80, 96, 112, 136, 160, 192, 200, 248]


@pytest.mark.parametrize("d", PADDED_DIMS)
@pytest.mark.parametrize("variant", _representatives())
def test_variant_padded_head_dim(rt, variant, d):
    """Families that pad (scalar, sm90) run any multiple of 8 up to their head dim; the others
    refuse it with the rule."""
    cfg = config_from_name(variant)
    q, k, v = random_qkv(2, 3, 150, 207, d, DTYPES[cfg.dtype], generator=torch.Generator("cuda").manual_seed(14))
    scale = 1 / math.sqrt(d)
    if not cfg.PADS_HEAD_DIM or d > cfg.head_dim:
        with pytest.raises(ValueError, match=f"head_dim {d} but variant {variant} needs"):
            rt.run(variant, q, k, v, scale)
        return
    check(lambda out, lse: rt.run(variant, q, k, v, scale, out, lse), q, k, v, cfg.causal, scale)


# V's head dim against Q/K's, from the variant's head dim D: Q/K wider, V wider, and both below
# D and different (D=256: DeepSeek's 192/128).
VALUE_DIM_CASES = {"qk-wider": (1, 2), "v-wider": (2, 1), "both-padded": (4 / 3, 2)}


@pytest.mark.parametrize("case", sorted(VALUE_DIM_CASES))
@pytest.mark.parametrize("variant", _representatives())
def test_variant_value_head_dim(rt, variant, case):
    """Families that pad run a V head dim of its own (out has it) up to their head dim; the
    others refuse it with the rule."""
    cfg = config_from_name(variant)
    d, dv = (int(cfg.head_dim / f) for f in VALUE_DIM_CASES[case])
    gen = torch.Generator("cuda").manual_seed(16)
    q, k, v = random_qkv(2, 4, 150, 207, d, DTYPES[cfg.dtype], generator=gen, heads_k=2, head_dim_v=dv)
    scale = 1 / math.sqrt(d)
    if not cfg.PADS_HEAD_DIM:
        first_wrong = d if d != cfg.head_dim else dv  # query's is checked first
        with pytest.raises(ValueError, match=f"head_dim {first_wrong} but variant {variant} needs {cfg.head_dim}"):
            rt.run(variant, q, k, v, scale)
        return
    out, _ = rt.run(variant, q, k, v, scale)
    assert out.shape == (2, 4, 150, dv)
    check(lambda out, lse: rt.run(variant, q, k, v, scale, out, lse), q, k, v, cfg.causal, scale)


# ---------------------------------------------------------------------------------------------
# The public API: dispatch of windows to masked variants, alignments, GQA, combinations.
# ---------------------------------------------------------------------------------------------

def _api(q, k, v, **kwargs):
    def run(out, lse):
        o, l = fc.attention(q, k, v, return_lse=True, **kwargs)
        out.copy_(o)
        lse.copy_(l)
    return run


API_CASES = [
    # (B, H, Hkv, Sq, Sk, D, dtype, causal, window, softcap)
    (1, 8, 2, 1000, 1000, 128, "bf16", True, (256, 0), None),
    (2, 4, 4, 777, 1025, 64, "fp16", "bottom_right", (300, 0), 50.0),
    (1, 6, 3, 513, 2000, 128, "bf16", False, (128, 128), 30.0),
    (1, 4, 1, 2048, 2048, 256, "bf16", True, None, 50.0),
    (2, 8, 2, 600, 600, 96, "bf16", True, (100, 0), 30.0),
    (1, 4, 2, 300, 900, 80, "fp16", False, None, None),
    (1, 4, 4, 129, 129, 192, "bf16", "bottom_right", None, None),
    (1, 2, 2, 900, 200, 160, "fp16", "bottom_right", (50, 0), None),
    (3, 2, 1, 65, 4097, 40, "bf16", False, (-1, 10), 20.0),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: "-".join(map(str, c)))
def test_api_features(rt, case):
    b, h, hkv, sq, sk, d, dtype, causal, window, softcap = case
    gen = torch.Generator(device="cuda").manual_seed(15)
    q, k, v = random_qkv(b, h, sq, sk, d, DTYPES[dtype], generator=gen, heads_k=hkv)
    q = q * 1.5
    check(_api(q, k, v, causal=causal, window=window, softcap=softcap), q, k, v, causal, 1 / math.sqrt(d),
          window, softcap)


VALUE_DIM_API_CASES = [
    # (B, H, Hkv, Sq, Sk, D, Dv, dtype, causal, window, softcap)
    (1, 8, 2, 1000, 1000, 192, 128, "bf16", True, (256, 0), None),  # DeepSeek-style
    (2, 4, 4, 777, 1025, 64, 128, "fp16", "bottom_right", None, 30.0),
    (1, 4, 1, 300, 900, 128, 64, "bf16", False, None, None),
    (1, 2, 2, 129, 129, 40, 96, "fp16", False, (-1, 10), 20.0),
]


@pytest.mark.parametrize("case", VALUE_DIM_API_CASES, ids=lambda c: "-".join(map(str, c)))
def test_api_value_head_dim(rt, case):
    b, h, hkv, sq, sk, d, dv, dtype, causal, window, softcap = case
    gen = torch.Generator(device="cuda").manual_seed(17)
    q, k, v = random_qkv(b, h, sq, sk, d, DTYPES[dtype], generator=gen, heads_k=hkv, head_dim_v=dv)
    check(_api(q, k, v, causal=causal, window=window, softcap=softcap), q, k, v, causal, 1 / math.sqrt(d),
          window, softcap)


def test_sdpa_drop_in_value_head_dim_matches_torch(rt):
    """torch SDPA takes a value head dim of its own; so do the drop-in and the patch."""
    q, k, v = random_qkv(2, 8, 333, 333, 192, torch.bfloat16, generator=torch.Generator("cuda").manual_seed(18),
                         heads_k=2, head_dim_v=128)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    got = fc.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert got.shape == want.shape == (2, 8, 333, 128)
    assert (got.float() - want.float()).abs().max().item() < 2e-2
    with fc.patch_sdpa() as patch:
        patched = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert patch.counts["flashcore"] == 1 and torch.equal(patched, got)


def test_api_window_dispatches_to_a_masked_variant(rt, capfd, monkeypatch):
    """A window on a non-causal call runs a masked (causal) variant, and FLASHCORE_PRINT_DISPATCH
    says so; the same shape without a window runs an unmasked one."""
    from flashcore_cutlass.runtime import forget_decisions

    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    forget_decisions()
    q, k, v = random_qkv(1, 2, 300, 300, 64, torch.float16)
    fc.attention(q, k, v, window=(16, 16))
    fc.attention(q, k, v)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("flashcore dispatch")]
    assert len(lines) == 2 and "_causal_" in lines[0] and "_full_" in lines[1], err


def test_api_wide_window_equals_no_window(rt):
    q, k, v = random_qkv(1, 4, 500, 500, 128, torch.bfloat16)
    full = fc.attention(q, k, v)
    wide = fc.attention(q, k, v, window=(500, 500))
    causal = fc.attention(q, k, v, causal=True)
    causal_wide = fc.attention(q, k, v, causal=True, window=(10_000, 0))
    assert torch.equal(causal, causal_wide)
    assert (full.float() - wide.float()).abs().max().item() < 1e-2


def test_api_window_under_compile_and_graphs(rt):
    """The op's window and softcap arguments survive torch.compile(fullgraph=True) and a CUDA graph."""
    q, k, v = random_qkv(1, 4, 256, 256, 64, torch.float16)
    want = fc.attention(q, k, v, causal=True, window=(32, 0), softcap=20.0)
    compiled = torch.compile(lambda a, b, c: fc.attention(a, b, c, causal=True, window=(32, 0), softcap=20.0),
                             fullgraph=True)
    assert torch.equal(compiled(q, k, v), want)
    static_out = torch.empty_like(q)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out.copy_(fc.attention(q, k, v, causal=True, window=(32, 0), softcap=20.0))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_out, want)


# ---------------------------------------------------------------------------------------------
# Decoding with grouped-query attention: a group's query heads packed into the rows of one
# problem (problem.gqa_key_range, the binding's fwd_pack_gqa).
# ---------------------------------------------------------------------------------------------

PACKED_DECODE_CASES = [
    # (B, H, Hkv, Sk, D, Dv, dtype, causal, window, softcap)
    (1, 32, 8, 8192, 128, None, "bf16", "bottom_right", None, None),  # Llama-3-8B decoding
    (4, 32, 8, 4999, 128, None, "fp16", "bottom_right", (4096, 0), None),  # Mistral's window
    (2, 16, 8, 3001, 256, None, "bf16", "bottom_right", None, 50.0),  # Gemma-2: D256, softcap
    (3, 8, 1, 777, 64, None, "fp16", False, None, None),  # MQA
    (1, 28, 4, 1000, 128, None, "bf16", True, None, None),  # top-left: key 0 alone
    (2, 8, 2, 513, 64, None, "bf16", False, (100, 20), None),  # a two-sided window
    (1, 16, 2, 2048, 192, 128, "bf16", "bottom_right", None, None),  # a value head dim of its own
    (1, 96, 1, 300, 96, None, "fp16", "bottom_right", (200, 0), 30.0),  # 96 rows: more than a 64-row tile
]


@pytest.mark.parametrize("case", PACKED_DECODE_CASES, ids=lambda c: "-".join(map(str, c)))
def test_api_gqa_decoding_packs_query_heads(rt, case):
    """One query row per head: dispatch takes the packed path (its cached decision names the
    key range) and the result is the per-head reference's, for every mask, softcap and head dim;
    q as a slice of a fused (B, 1, H + 2 Hkv, D) decoding projection (head stride D)."""
    from flashcore_cutlass import api
    from flashcore_cutlass.runtime import forget_decisions

    b, h, hkv, sk, d, dv, dtype, causal, window, softcap = case
    gen = torch.Generator(device="cuda").manual_seed(19)
    _, k, v = random_qkv(b, hkv, 1, sk, d, DTYPES[dtype], generator=gen, head_dim_v=dv)
    fused = torch.randn(b, 1, h + 2 * hkv, d, device="cuda", dtype=DTYPES[dtype], generator=gen) * 1.5
    q = fused[:, :, :h].transpose(1, 2)
    assert q.shape == (b, h, 1, d) and q.stride()[1:] == (d, (h + 2 * hkv) * d, 1)
    forget_decisions()  # the API's and the binding's: decided anew, in Python
    check(_api(q, k, v, causal=causal, window=window, softcap=softcap), q, k, v, causal, 1 / math.sqrt(d),
          window, softcap)
    decisions = list(api._dispatch_cache.values())
    assert len(decisions) == 1 and type(decisions[0]) is tuple, f"not the packed path: {decisions}"


@pytest.mark.parametrize("variant", _representatives())
def test_variant_pack_gqa(rt, variant):
    """Every family's unmasked representative on a packed decoding call: 8 query heads on 2
    key/value heads, keys [100, 613) of 700 (the binding offsets K/V to the range)."""
    cfg = config_from_name(variant)
    if cfg.causal:
        pytest.skip("a packed call runs on an unmasked variant (its mask is the key range)")
    gen = torch.Generator(device="cuda").manual_seed(20)
    q, k, v = random_qkv(2, 8, 1, 700, cfg.head_dim, DTYPES[cfg.dtype], generator=gen, heads_k=2)
    scale = 1 / math.sqrt(cfg.head_dim)

    def run(out, lse):
        o, l = rt.run_pack_gqa(variant, q, k, v, scale, 100, 613)
        out.copy_(o)
        lse.copy_(l)

    check(run, q, k[:, :, 100:613], v[:, :, 100:613], False, scale)


def test_pack_gqa_refuses_what_it_cannot_pack(rt):
    """The binding's own checks: one query row, an unmasked variant, a non-empty key range within
    the keys; one clear message each."""
    names = sorted(rt.ids)
    plain = next(n for n in names if not config_from_name(n).causal)
    cfg = config_from_name(plain)
    masked = [n for n in names if config_from_name(n).causal and config_from_name(n).dtype == cfg.dtype
              and config_from_name(n).head_dim == cfg.head_dim]
    dtype, d = DTYPES[cfg.dtype], cfg.head_dim
    q = torch.randn(1, 8, 1, d, device="cuda", dtype=dtype)
    k = torch.randn(1, 2, 50, d, device="cuda", dtype=dtype)
    refusal = "takes one query row, no packed sequences and an unmasked variant"
    with pytest.raises(ValueError, match=refusal):
        rt.run_pack_gqa(plain, torch.randn(1, 8, 2, d, device="cuda", dtype=dtype), k, k, 0.1, 0, 50)
    for name in masked[:1]:
        with pytest.raises(ValueError, match=refusal):
            rt.run_pack_gqa(name, q, k, k, 0.1, 0, 50)
    with pytest.raises(ValueError, match=r"key range \[40, 60\) is not a non-empty range of the 50 keys"):
        rt.run_pack_gqa(plain, q, k, k, 0.1, 40, 60)
    with pytest.raises(ValueError, match=r"key range \[7, 7\)"):
        rt.run_pack_gqa(plain, q, k, k, 0.1, 7, 7)
    out, lse = rt.run_pack_gqa(plain, q, k, k, 0.1, 0, 50)
    torch.cuda.synchronize()
    assert out.shape == (1, 8, 1, d) and lse.shape == (1, 8, 1) and torch.isfinite(lse).all()
