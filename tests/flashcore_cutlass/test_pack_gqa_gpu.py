"""GQA with the query heads of a group packed into the rows of one tile (sm90 variants with
pack_gqa = 1, pack_gqa.cuh; problem.gqa_row_packed): every built packing variant given the
binding's raw diagonals, against the fp32 reference, over group sizes that fill a tile's row slots
and ones that leave holes (G = 3, 7), one query per tile (G = 64), causal alignments, windows,
softcap, rows without keys, the model layout of q, padded head dims, packed variable-length
sequences; then dispatch through attention() and attention_varlen(). Needs a Hopper GPU (H100/H200)."""

from __future__ import annotations

import math

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv, visible_range
from gpu_support import gpu_skip_reason, pack_gqa_params
from test_features_gpu import check

pytestmark = pytest.mark.gpu
SKIP = gpu_skip_reason()
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# (B, H, Hkv, Sq, Sk, causal alignment, window, softcap): speculative decoding shapes (a few query
# rows over a KV cache, bottom-right), top-left with Sq < Sk and Sq = Sk over several packed tiles,
# Sq > Sk (rows that see no key), windows, softcap.
CASES = [
    (1, 32, 8, 4, 1000, "bottom_right", None, None),
    (2, 28, 4, 5, 777, "bottom_right", None, None),  # G = 7: 8 row slots a query, one of them padding
    (1, 16, 8, 17, 300, "bottom_right", (64, 0), 30.0),
    (2, 8, 1, 3, 129, "top_left", None, None),  # MQA: 8 heads on one K/V head
    (1, 32, 2, 9, 200, "bottom_right", None, None),  # G = 16: 4 queries a tile, 3 tiles
    (1, 64, 1, 2, 100, "bottom_right", None, None),  # G = 64: one query a tile
    (3, 6, 2, 40, 40, "top_left", None, None),  # G = 3: 16 queries a tile, rows with g = 3 padding
    (1, 8, 2, 7, 5, "bottom_right", None, None),  # the first 2 queries see no key: out 0, lse +inf
    (2, 12, 4, 33, 2049, "bottom_right", (300, 0), 5.0),
]


def _case_id(case):
    b, h, hkv, sq, sk, align, window, cap = case
    return f"b{b}h{h}kv{hkv}q{sq}k{sk}-{align}" + (f"-w{window[0]}" if window else "") + ("-sc" if cap else "")


def _run(rt, variant, q, k, v, scale, causal, window, softcap):
    lo, hi = visible_range(causal, window, q.shape[2], k.shape[2])
    hi = k.shape[2] if hi is None else hi
    return lambda out, lse: rt.run(variant, q, k, v, scale, out, lse, hi, lo, softcap or 0.0)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("variant", pack_gqa_params())
def test_packed_groups_match_reference(rt, variant, case):
    cfg = config_from_name(variant)
    b, h, hkv, sq, sk, causal, window, cap = case
    if not cfg.causal:
        causal, window = False, None
    gen = torch.Generator(device="cuda").manual_seed(21)
    q, k, v = random_qkv(b, h, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], generator=gen, heads_k=hkv)
    scale = 1 / math.sqrt(cfg.head_dim)
    check(_run(rt, variant, q, k, v, scale, causal, window, cap), q, k, v, causal, scale, window, cap)


@pytest.mark.parametrize("variant", pack_gqa_params())
def test_packed_groups_model_layout_and_padded_head_dim(rt, variant):
    """q, k, v as a model holds them, (B, S, H, D) transposed to (B, H, S, D) views of a fused
    QKV projection, with a head dim below the variant's (TMA zero-fills the columns) and the
    output written into a (B, S, H, D) view."""
    cfg = config_from_name(variant)
    b, h, hkv, sq, sk, d = 2, 16, 4, 6, 500, cfg.head_dim - 32
    dtype = DTYPES[cfg.dtype]
    gen = torch.Generator(device="cuda").manual_seed(22)
    q = torch.randn(b, sq, h, d, device="cuda", dtype=dtype, generator=gen).transpose(1, 2)
    kv = torch.randn(b, sk, 2, hkv, d, device="cuda", dtype=dtype, generator=gen)
    k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
    causal = "bottom_right" if cfg.causal else False
    scale = 1 / math.sqrt(d)
    lo, hi = visible_range(causal, None, sq, sk)

    def run(out, lse):
        model_out = torch.full((b, sq, h, d), float("nan"), device="cuda", dtype=dtype)
        rt.run(variant, q, k, v, scale, model_out.transpose(1, 2), lse, hi or 0, lo)
        out.copy_(model_out.transpose(1, 2))

    check(run, q, k, v, causal, scale)


# Packed variable-length sequences (lens_q, lens_k, H, Hkv): decoding a batch of caches of different
# lengths (one query row each), a few rows each with an empty one, and sequences longer than one
# packed tile (the last tile of each is stored row by row: a TMA box would write the next sequence's).
VARLEN_CASES = [
    ([1, 1, 1, 1, 1], [700, 33, 1, 129, 4096], 32, 8),
    ([4, 0, 7, 3], [100, 5, 257, 3], 28, 4),
    ([17, 40, 5], [300, 40, 64], 8, 2),
]


@pytest.mark.parametrize("case", VARLEN_CASES, ids=["decode-batch", "few-rows", "several-tiles"])
@pytest.mark.parametrize("variant", pack_gqa_params())
def test_packed_groups_of_packed_sequences(rt, variant, case):
    from test_varlen_gpu import check_packed, packed

    cfg = config_from_name(variant)
    lens_q, lens_k, h, hkv = case
    q, k, v, cu_q, cu_k = packed(lens_q, lens_k, h, hkv, cfg.head_dim, DTYPES[cfg.dtype], seed=24)
    scale = 1 / math.sqrt(cfg.head_dim)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((h, q.shape[0]), float("nan"), device="cuda")
    as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
    rt.fwd(rt.ids[variant], as4(q), as4(k), as4(v), scale, as4(out), lse.unsqueeze(0), 0, None, 0.0, cu_q, cu_k,
           max(lens_q), max(lens_k), bool(cfg.causal))
    check_packed(out, lse, q, k, v, cu_q, cu_k, "bottom_right" if cfg.causal else False, scale)


def test_varlen_decoding_dispatches_to_a_packing_variant(rt, monkeypatch, capfd):
    """attention_varlen with grouped heads and one query row per sequence runs a packing variant
    where one is built, and matches the reference per sequence."""
    from test_varlen_gpu import check_packed, packed

    lens_q, lens_k, h, hkv = [1, 1, 1], [5000, 17, 800], 32, 8
    problem = Problem("bf16", 128, True, 3, h, 1, max(lens_k), bottom_right=True, group=h // hkv)
    if SKIP or not rt.registry.candidates(problem):
        pytest.skip(SKIP or "no bf16 D128 causal GQA-packing variant built")
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    q, k, v, cu_q, cu_k = packed(lens_q, lens_k, h, hkv, 128, torch.bfloat16, seed=25)
    out, lse = fc.attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal="bottom_right",
                                   return_lse=True)
    err = capfd.readouterr().err
    assert "GQA 32/8 packed" in err and "_pq1" in err, err
    check_packed(out, lse, q, k, v, cu_q, cu_k, "bottom_right", 1 / math.sqrt(128))


def test_api_dispatches_speculative_decoding_to_a_packing_variant(rt, monkeypatch, capfd):
    """attention() with GQA and 1 < Sq < 64 under a bottom-right mask runs a packing variant where
    one is built (its cached decision names it), and matches the reference."""
    b, h, hkv, sq, sk, d = 1, 32, 8, 4, 3000, 128
    problem = Problem("bf16", d, True, b, h, sq, sk, bottom_right=True, group=h // hkv)
    if SKIP or not rt.registry.candidates(problem):
        pytest.skip(SKIP or "no bf16 D128 causal GQA-packing variant built")
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    gen = torch.Generator(device="cuda").manual_seed(23)
    q, k, v = random_qkv(b, h, sq, sk, d, torch.bfloat16, generator=gen, heads_k=hkv)
    out, lse = fc.attention(q, k, v, causal="bottom_right", return_lse=True)
    err = capfd.readouterr().err
    assert "GQA 32/8 packed" in err and "_pq1" in err, err
    check(lambda o, s: (o.copy_(out), s.copy_(lse)), q, k, v, "bottom_right", 1 / math.sqrt(d))
