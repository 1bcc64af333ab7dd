"""Every built variant against an fp32 reference on fresh random inputs (needs a Hopper GPU: H100/H200)."""

from __future__ import annotations

import re

import pytest
import torch

from flashcore_codegen import config_from_name
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv, reference_attention
from gpu_support import (axis_params, built_variants, check_against_reference, check_nan_pattern, default_scale,
                         gpu_skip_reason, representative_variants, sdpa_any_scale)

pytestmark = pytest.mark.gpu
SKIP = gpu_skip_reason()

# Sequence lengths from the issue: 1, 17, 127, 128, 1000, 4096, with Sq != Sk cases.
SEQ_PAIRS = [(1, 1), (1, 4096), (17, 17), (17, 1000), (127, 128), (128, 127), (128, 128),
             (1000, 1000), (1000, 17), (127, 4096), (4096, 4096), (4096, 1)]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _variants():
    names = built_variants() if not SKIP else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=SKIP or "no variants built"))]


def _runner(rt, name, scale):
    return lambda q, k, v, out, lse: rt.run(name, q, k, v, scale, out, lse)


@pytest.mark.parametrize("variant", _variants())
def test_variant_matches_reference(rt, variant):
    cfg = config_from_name(variant)
    dtype = DTYPES[cfg.dtype]
    scale = default_scale(cfg.head_dim)
    for sq, sk in SEQ_PAIRS:
        if cfg.family == "scalar" and sq * sk > 1000 * 1000:
            continue  # the scalar rung is ~100x slower; its boundaries are covered by the rest
        q = torch.randn(2, 3, sq, cfg.head_dim, device="cuda", dtype=dtype)
        k = torch.randn(2, 3, sk, cfg.head_dim, device="cuda", dtype=dtype)
        v = torch.randn(2, 3, sk, cfg.v_head_dim, device="cuda", dtype=dtype)  # a V head dim of its own where set
        try:
            check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)
        except AssertionError as exc:
            raise AssertionError(f"{variant} at Sq={sq} Sk={sk}: {exc}") from None


# Scores that rise (head 0) or fall (head 1) along the keys, on top of random ones, so a row's max
# grows from key tile to key tile whichever way a kernel walks them: by a fraction of the lazy
# rescale's 2^8 margin per tile (its stale max then weights keys by up to 2^8), by several margins
# per tile (every tile rescales), and in between.
RAMP_HEIGHTS = (20.0, 300.0, 3000.0)  # the ramp's total rise in scaled-score units over the keys


@pytest.mark.parametrize("height", RAMP_HEIGHTS)
@pytest.mark.parametrize("variant", _variants())
def test_variant_growing_row_max(rt, variant, height):
    cfg = config_from_name(variant)
    dtype = DTYPES[cfg.dtype]
    scale = default_scale(cfg.head_dim)
    gen = torch.Generator(device="cuda").manual_seed(3)
    for sq, sk in ((300, 1000), (1000, 1000)):
        q, k, v = random_qkv(1, 3, sq, sk, cfg.head_dim, dtype, generator=gen, head_dim_v=cfg.v_head_dim)
        # Column 0 carries the ramp: q = 1 there, k rises linearly (head 0) or falls (head 1).
        q[:, :2, :, 0] = 1.0
        ramp = torch.linspace(0.0, height / scale, sk, device="cuda")
        k[:, 0, :, 0] = ramp.to(dtype)
        k[:, 1, :, 0] = ramp.flip(0).to(dtype)
        try:
            check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)
        except AssertionError as exc:
            raise AssertionError(f"{variant} at Sq={sq} Sk={sk}, ramp {height}: {exc}") from None


@pytest.mark.parametrize("variant", _variants())
def test_variant_strided_fused_qkv(rt, variant):
    """Slices of a fused (B, S, 3, H, D) QKV tensor: head and row strides are not the dense ones."""
    cfg = config_from_name(variant)
    b, s, h, d = 2, 300, 4, cfg.head_dim
    qkv = torch.randn(b, s, 3, h, d, device="cuda", dtype=DTYPES[cfg.dtype])
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    v = v[..., :cfg.v_head_dim]  # a V head dim of its own: the first columns of V's slice
    assert not q.is_contiguous() and q.stride(-1) == 1
    scale = 0.3  # a non-default scale too
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)


# ---------------------------------------------------------------------------------------------
# Edge cases, one representative variant per family (and mask): see gpu_support.representative_variants.
# ---------------------------------------------------------------------------------------------

def _representatives(per_mask: bool = True, prefer_dtype: str | None = None):
    names = representative_variants(per_mask, prefer_dtype) if not SKIP else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=SKIP or "no variants built"))]


# Negative, zero (both signs), tiny, subnormal and large scales: every one must give
# softmax(scale * Q K^T) V. The SDPA tolerance comes from an equivalent positive-scale problem
# (torch's fused kernels themselves produce NaN for a negative or zero scale with a causal mask).
ANY_SCALES = [-0.125, -1.0, -20.0, 20.0, 0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40]


@pytest.mark.parametrize("scale", ANY_SCALES, ids=[repr(s) for s in ANY_SCALES])
@pytest.mark.parametrize("variant", _representatives())
def test_any_finite_scale_matches_sdpa(rt, variant, scale):
    cfg = config_from_name(variant)
    gen = torch.Generator(device="cuda").manual_seed(1)
    # Several key tiles, a partial last tile and (causal) the diagonal inside a tile.
    q, k, v = random_qkv(2, 3, 200, 333, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale, baseline=sdpa_any_scale)


# batch or heads beyond the 65535 limit of gridDim.z/y: launched in chunks (launch_chunked in
# api.h) with the pointers advanced; a 2-batch tail chunk, a head chunk, a batch chunk with H > 1.
@pytest.mark.parametrize("b,h", [(65537, 1), (1, 66000), (65536, 2)])
@pytest.mark.parametrize("variant", _representatives(per_mask=False))
def test_batch_heads_beyond_grid_limit(rt, variant, b, h):
    cfg = config_from_name(variant)
    gen = torch.Generator(device="cuda").manual_seed(2)
    q, k, v = random_qkv(b, h, 17, 33, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)  # a few tens of MB
    scale = default_scale(cfg.head_dim)
    why = cfg.can_implement(Problem(cfg.dtype, cfg.head_dim, cfg.causal, b, h, 17, 33))
    if why is not None:  # a split-KV global combine's scratch for 65k+ query tiles: refused, in the same words
        with pytest.raises(ValueError, match=f"cannot run this call: {re.escape(why)}"):
            rt.run(variant, q, k, v, scale)
        return
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)


# One bad element in one input: (tensor, batch, head, row, column, value).
BAD_INPUTS = {
    "nan_q": ("q", 0, 0, 5, 3, float("nan")),
    "nan_k": ("k", 0, 1, 70, 7, float("nan")),
    "nan_v": ("v", 0, 0, 70, 9, float("nan")),
    "inf_q": ("q", 0, 1, 100, 0, float("inf")),
    "neg_inf_k": ("k", 0, 0, 40, 0, float("-inf")),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("variant", _representatives())
def test_nonfinite_inputs_propagate_like_reference(rt, variant, case):
    """A NaN in q row i makes out row i NaN and nothing else; a NaN/inf in k reaches exactly the
    rows that see that key (scores of +inf give NaN rows, -inf a zero weight), like the fp32
    reference. A NaN in v at (key j, column c) makes column c NaN in every row that sees key j;
    rows that do not see it may be NaN there too (0 * NaN in a tile that holds the diagonal;
    the reference's own matmul makes every row NaN there), but never anywhere else."""
    cfg = config_from_name(variant)
    gen = torch.Generator(device="cuda").manual_seed(3)
    sq = sk = 150
    q, k, v = random_qkv(1, 2, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], generator=gen)
    which, bi, hi, row, col, value = BAD_INPUTS[case]
    {"q": q, "k": k, "v": v}[which][bi, hi, row, col] = value
    scale = default_scale(cfg.head_dim)
    out = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:3], float("nan"), device="cuda", dtype=torch.float32)
    rt.run(variant, q, k, v, scale, out, lse)
    torch.cuda.synchronize()
    ref_out, ref_lse = reference_attention(q, k, v, cfg.causal, scale=scale)
    must = may = None
    if which == "v":
        may = torch.zeros(ref_out.shape, dtype=torch.bool, device="cuda")
        may[bi, hi, :, col] = True
        must = may.clone()
        if cfg.causal:
            must[bi, hi, :row, col] = False  # rows before the key do not see it
    check_nan_pattern(out, lse, ref_out, ref_lse, must_be_nan=must, may_be_nan=may)


@pytest.mark.parametrize("variant", _representatives(prefer_dtype="fp16"))
def test_scores_beyond_fp16_range(rt, variant):
    """Large-magnitude q, k (fp16 where the family has it): q.k reaches 65536 and beyond, past
    fp16's 65504. Scores live in fp32, so nothing may overflow where the reference does not."""
    cfg = config_from_name(variant)
    dtype, d = DTYPES[cfg.dtype], cfg.head_dim
    gen = torch.Generator(device="cuda").manual_seed(4)
    q = (torch.randn(2, 2, 300, d, device="cuda", generator=gen) * 24).to(dtype)
    k = (torch.randn(2, 2, 300, d, device="cuda", generator=gen) * 24).to(dtype)
    v = torch.randn(2, 2, 300, d, device="cuda", generator=gen).to(dtype)
    q[:, :, 7] = 32.0
    k[:, :, 3] = 32.0  # q_7 . k_3 = 1024 * d >= 65536
    scores = q.float() @ k.float().transpose(-1, -2)
    assert scores.abs().max().item() > 65504
    scale = default_scale(d)
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)


def _dependent_chain(rt, variant, q, k_long, v_long, k_short, v_short, outs, scale):
    """A long call, then calls whose queries (values, where V has a head dim of its own) are the
    previous call's output, all into preallocated outputs: a kernel that read them before the
    previous kernel finished would read the NaN poison (or a partial result) instead."""
    rt.run(variant, q, k_long, v_long, scale, outs[0][0], outs[0][1])
    for i in range(1, len(outs)):
        if outs[i - 1][0].shape[-1] == q.shape[-1]:
            rt.run(variant, outs[i - 1][0], k_short, v_short, scale, outs[i][0], outs[i][1])
        else:  # V's head dim is not Q's: the previous output is the next call's V (its 4096 rows)
            rt.run(variant, q, k_long, outs[i - 1][0], scale, outs[i][0], outs[i][1])


def _programmatic_variants():
    names = [n for n in built_variants() if config_from_name(n).PROGRAMMATIC_LAUNCH] if not SKIP else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=SKIP or "no sm90 variants built"))]


@pytest.mark.parametrize("variant", _programmatic_variants())
def test_programmatic_launch_waits_for_the_previous_kernel(rt, variant):
    """Variants that launch as programmatic dependents (their prologue overlaps the previous
    kernel's end): a chain of dependent calls, eager and replayed from a CUDA graph, must give
    bit for bit what the chain gives with programmatic launch off."""
    cfg = config_from_name(variant)
    dtype, d, dv = DTYPES[cfg.dtype], cfg.head_dim, cfg.v_head_dim
    gen = torch.Generator(device="cuda").manual_seed(5)
    q, k_long = (torch.randn(1, 16, 4096, d, device="cuda", generator=gen).to(dtype) for _ in range(2))
    v_long = torch.randn(1, 16, 4096, dv, device="cuda", generator=gen).to(dtype)
    k_short = torch.randn(1, 16, 64, d, device="cuda", generator=gen).to(dtype)
    v_short = torch.randn(1, 16, 64, dv, device="cuda", generator=gen).to(dtype)
    scale = default_scale(d)
    outs = [(torch.empty_like(v_long), torch.empty(q.shape[:3], device="cuda", dtype=torch.float32)) for _ in range(5)]

    def poison():
        for out, lse in outs:
            out.fill_(float("nan"))
            lse.fill_(float("nan"))

    def chain():
        _dependent_chain(rt, variant, q, k_long, v_long, k_short, v_short, outs, scale)

    previous = rt.set_programmatic_launch(False)
    try:
        poison()
        chain()
        torch.cuda.synchronize()
        expected = [(out.clone(), lse.clone()) for out, lse in outs]
        assert all(out.isfinite().all() and lse.isfinite().all() for out, lse in expected)
        rt.set_programmatic_launch(True)
        for mode in ("eager", "graph"):
            poison()
            if mode == "eager":
                chain()
            else:
                graph = torch.cuda.CUDAGraph()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    chain()  # warm-up outside the capture (one-time launch setup)
                    torch.cuda.synchronize()
                    with torch.cuda.graph(graph, stream=stream):
                        chain()
                torch.cuda.current_stream().wait_stream(stream)
                poison()
                graph.replay()
            torch.cuda.synchronize()
            for i, ((out, lse), (ref_out, ref_lse)) in enumerate(zip(outs, expected)):
                assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse), f"{variant} ({mode}): call {i} differs"
    finally:
        rt.set_programmatic_launch(previous)


# (batch, heads, query tiles per head, Sk): whole query tiles outnumbering 132 SMs unevenly (275, 200,
# 189 tiles) over at least 8192 keys (SM90_STREAM_K_MIN_KEYS), so the CTAs walk equal key ranges and the
# tiles cut between two CTAs are combined; Sk a multiple of block_n or not.
STREAM_K_SHAPES = [(1, 11, 25, 8193), (2, 5, 20, 8320), (3, 7, 9, 9000)]


@pytest.mark.parametrize("shape", STREAM_K_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", axis_params("stream_k", "stream-K"))
def test_stream_k_pieces_match_reference(rt, variant, shape):
    cfg = config_from_name(variant)
    b, h, tiles, sk = shape
    sq = tiles * cfg.block_m
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    # Not vacuous: this call takes the stream-K scratch (the mirror of FwdKernel::workspace_bytes).
    assert cfg.workspace_bytes(b, h, sq, seqlen_k=sk, sm_count=sms) > 4, "the call would not run stream-K"
    dtype = DTYPES[cfg.dtype]
    scale = default_scale(cfg.head_dim)
    q = torch.randn(b, h, sq, cfg.head_dim, device="cuda", dtype=dtype)
    k = torch.randn(b, h, sk, cfg.head_dim, device="cuda", dtype=dtype)
    v = torch.randn(b, h, sk, cfg.v_head_dim, device="cuda", dtype=dtype)
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)
