"""Packed variable-length attention on the GPU against the fp32 reference run per sequence:
every family's representative variants (the binding's packed path), and attention_varlen with
masks, windows, softcap and grouped-query heads. Needs a Hopper GPU (H100/H200)."""

from __future__ import annotations

import math

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass.reference import reference_attention
from gpu_support import finish_or_stop, idle_warpgroup_params, persistent_params, representative_params

pytestmark = pytest.mark.gpu
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_representatives = representative_params


def packed(lens_q, lens_k, h, hkv, d, dtype, seed=0, dv=None):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    tq, tk = sum(lens_q), sum(lens_k)
    q = torch.randn(tq, h, d, device="cuda", dtype=dtype, generator=gen)
    k = torch.randn(tk, hkv, d, device="cuda", dtype=dtype, generator=gen)
    v = torch.randn(tk, hkv, dv or d, device="cuda", dtype=dtype, generator=gen)
    cu = lambda lens: torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")  # noqa: E731
    return q, k, v, cu(lens_q), cu(lens_k)


def check_packed(out, lse, q, k, v, cu_q, cu_k, causal, scale, window=None, softcap=None):
    """Each sequence against the 4-D reference on its own rows; rows that see no key: out 0, lse +inf."""
    finish_or_stop()
    assert not torch.isnan(out).any() and not torch.isnan(lse).any(), "unwritten (NaN-poisoned) results"
    cq, ck = cu_q.tolist(), cu_k.tolist()
    for b in range(len(cq) - 1):
        q0, q1, k0, k1 = cq[b], cq[b + 1], ck[b], ck[b + 1]
        if q1 == q0:
            continue
        as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
        ref_out, ref_lse = reference_attention(as4(q[q0:q1]), as4(k[k0:k1]), as4(v[k0:k1]), causal, scale=scale,
                                               window=window, softcap=softcap)
        ours, ours_lse = as4(out[q0:q1]).float(), lse[:, q0:q1].unsqueeze(0)
        if k1 == k0:  # no key at all: the rows-without-keys convention
            assert (ours == 0).all() and torch.isinf(ours_lse).all() and (ours_lse > 0).all()
            continue
        empty = torch.isinf(ref_lse)
        err = (ours - ref_out).abs().max().item()
        assert err < 0.02, f"sequence {b} ({q1 - q0} x {k1 - k0}): max|out - ref| = {err:.3g}"
        assert torch.equal(torch.isinf(ours_lse), empty), f"sequence {b}: rows without keys differ"
        if (~empty).any():
            rel = ((ours_lse[~empty] - ref_lse[~empty]).abs() / ref_lse[~empty].abs().clamp_min(1)).max().item()
            assert rel < 1e-3, f"sequence {b}: lse relative error {rel:.3g}"


# (lens_q, lens_k): equal, different per sequence, Sq != Sk both ways, one-row and empty query
# sequences, lengths that are not tile multiples, a sequence longer than a few tiles.
LENGTHS = [
    ([300, 17, 128, 1, 0, 700], [300, 17, 128, 1, 5, 700]),
    ([5, 300, 128, 64], [5, 700, 1000, 64]),
    ([1000, 33], [200, 513]),
]


@pytest.mark.parametrize("lens", LENGTHS, ids=["mixed", "kv-longer", "q-longer"])
@pytest.mark.parametrize("variant", _representatives())
def test_variant_packed(rt, variant, lens):
    check_variant_packed(rt, variant, *lens, heads=4, heads_k=2)


# (lens_q, lens_k): tiles with many keys, few keys, none (a query sequence longer than its keys,
# bottom-right) and no rows at all (past a short sequence's end). Persistent CTAs met such empty
# tiles back to back; a warp of the three-CTA 64x96 tile could then miss a Q phase and hang
# (benchmarks/NOTES.md, 2026-11-28 16:51-: both sets hung it on the H200 before the fix).
MANY_TILES = [([1000, 33, 0, 517, 1, 260, 129], [1000, 700, 5, 517, 300, 260, 1]), ([1000, 129], [1000, 1])]


@pytest.mark.parametrize("lens", MANY_TILES, ids=["seven", "keyless-rows"])
@pytest.mark.parametrize("variant", persistent_params())
def test_persistent_variant_packed_many_tiles(rt, variant, lens):
    """Packed sequences of very different lengths on 32 heads: each persistent CTA walks tiles with
    many keys, few keys and no rows at all one after the other."""
    check_variant_packed(rt, variant, *lens, heads=32, heads_k=8, seed=4)


# Query lengths whose last tile leaves row warpgroups idle (65, 130, 1, 257, 193 rows past a 64-row
# multiple), between whole ones, over long keys: every CTA's warpgroups switch between idle and
# computing tiles while the K/V ring turns over many times.
IDLE_LENGTHS = ([65, 1000, 130, 1, 768, 257, 193, 2000], [2000, 1000, 1500, 700, 768, 2100, 900, 2000])


@pytest.mark.parametrize("variant", idle_warpgroup_params())
def test_persistent_variant_idle_warpgroups_repeatable(rt, variant):
    """Idle warpgroups pass each K/V slot as a reader would (mainloop.cuh SlotPass): twelve runs on
    fresh NaN-poisoned outputs are bit-identical and the first matches the reference. A warpgroup
    that walked past slots unwaited could take a stale fill in its next tile: a run-to-run race."""
    cfg = config_from_name(variant)
    lens_q, lens_k = IDLE_LENGTHS
    heads, heads_k = 16, 4
    q, k, v, cu_q, cu_k = packed(lens_q, lens_k, heads, heads_k, cfg.head_dim, DTYPES[cfg.dtype], seed=5,
                                 dv=cfg.v_head_dim)
    as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
    runs = []
    for _ in range(12):
        out = torch.full((q.shape[0], heads, v.shape[-1]), float("nan"), device="cuda", dtype=q.dtype)
        lse = torch.full((heads, q.shape[0]), float("nan"), device="cuda")
        rt.fwd(rt.ids[variant], as4(q), as4(k), as4(v), 1 / math.sqrt(cfg.head_dim), as4(out), lse.unsqueeze(0), 0,
               None, 0.0, cu_q, cu_k, max(lens_q), max(lens_k), bool(cfg.causal))
        runs.append((out, lse))
    check_packed(*runs[0], q, k, v, cu_q, cu_k, "bottom_right" if cfg.causal else False, 1 / math.sqrt(cfg.head_dim))
    for i, (out, lse) in enumerate(runs[1:], 1):
        assert torch.equal(out, runs[0][0]) and torch.equal(lse, runs[0][1]), f"run {i} differs from run 0"


def check_variant_packed(rt, variant, lens_q, lens_k, heads, heads_k, seed=0):
    """One variant through the binding's packed path (its own alignment: bottom-right when
    masked) on NaN-poisoned results, against the reference per sequence."""
    cfg = config_from_name(variant)
    q, k, v, cu_q, cu_k = packed(lens_q, lens_k, heads, heads_k, cfg.head_dim, DTYPES[cfg.dtype], seed=seed,
                                 dv=cfg.v_head_dim)
    scale = 1 / math.sqrt(cfg.head_dim)
    out = torch.full((q.shape[0], heads, v.shape[-1]), float("nan"), device="cuda", dtype=q.dtype)
    lse = torch.full((heads, q.shape[0]), float("nan"), device="cuda")
    as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
    align = "bottom_right" if cfg.causal else False
    rt.fwd(rt.ids[variant], as4(q), as4(k), as4(v), scale, as4(out), lse.unsqueeze(0), 0, None, 0.0, cu_q, cu_k,
           max(lens_q), max(lens_k), bool(cfg.causal))
    check_packed(out, lse, q, k, v, cu_q, cu_k, align, scale)


CASES = [
    # (lens_q, lens_k, H, Hkv, D, dtype, causal, window, softcap)
    ([512, 1000, 3, 257], [512, 1000, 3, 257], 8, 2, 128, "bf16", True, None, None),
    ([64, 300, 1], [1000, 300, 700], 4, 4, 64, "fp16", "bottom_right", None, None),
    ([700, 129, 2000], [700, 129, 2000], 8, 1, 128, "bf16", "bottom_right", (256, 0), 30.0),
    ([300, 400], [500, 400], 6, 3, 96, "bf16", False, (64, 64), None),
    ([1, 1, 1, 1], [300, 17, 1000, 64], 8, 2, 128, "fp16", "bottom_right", None, 50.0),  # decode steps
    ([257, 1025], [257, 1025], 2, 2, 256, "bf16", False, None, None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[6]}-w{c[7]}-sc{c[8]}-d{c[4]}-h{c[2]}/{c[3]}")
def test_attention_varlen(rt, case):
    lens_q, lens_k, h, hkv, d, dtype, causal, window, softcap = case
    q, k, v, cu_q, cu_k = packed(lens_q, lens_k, h, hkv, d, DTYPES[dtype], seed=3)
    out, lse = fc.attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal, return_lse=True,
                                   window=window, softcap=softcap)
    assert out.shape == q.shape and out.is_contiguous() and lse.shape == (h, q.shape[0])
    check_packed(out, lse, q, k, v, cu_q, cu_k, causal, 1 / math.sqrt(d), window, softcap)


def test_attention_varlen_value_head_dim(rt):
    """V with a head dim of its own (DeepSeek-style 192/128) with GQA, bottom-right causal and a
    window: out is (total_q, H, Dv)."""
    lens_q, lens_k, h, hkv = [300, 1, 700], [500, 40, 700], 8, 2
    q, k, _, cu_q, cu_k = packed(lens_q, lens_k, h, hkv, 192, torch.bfloat16, seed=6)
    v = torch.randn(k.shape[0], hkv, 128, device="cuda", dtype=torch.bfloat16)
    out, lse = fc.attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal="bottom_right",
                                   return_lse=True, window=(200, 0))
    assert out.shape == (q.shape[0], h, 128) and out.is_contiguous()
    check_packed(out, lse, q, k, v, cu_q, cu_k, "bottom_right", 192 ** -0.5, (200, 0))


def test_varlen_equals_the_padded_batch(rt):
    """Equal lengths: packed and (B, H, S, D) batched give the same result."""
    b, s, h, d = 3, 384, 8, 128
    q, k, v, cu_q, cu_k = packed([s] * b, [s] * b, h, h, d, torch.bfloat16, seed=4)
    out = fc.attention_varlen(q, k, v, cu_q, cu_k, s, s, causal=True)
    as_batch = lambda t: t.view(b, s, h, d).transpose(1, 2)  # noqa: E731
    want = fc.attention(as_batch(q), as_batch(k), as_batch(v), causal=True)
    assert (as_batch(out).float() - want.float()).abs().max().item() < 1e-2


def test_varlen_in_a_cuda_graph(rt):
    q, k, v, cu_q, cu_k = packed([100, 300], [100, 300], 4, 4, 64, torch.float16, seed=5)
    want = fc.attention_varlen(q, k, v, cu_q, cu_k, 300, 300, causal=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        got = fc.attention_varlen(q, k, v, cu_q, cu_k, 300, 300, causal=True)  # offsets not re-validated
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(got, want)


def test_varlen_rejects_bad_offsets(rt):
    q, k, v, cu_q, cu_k = packed([10, 20], [10, 20], 2, 2, 64, torch.float16)
    bad = torch.tensor([0, 25, 29], dtype=torch.int32, device="cuda")  # ends before the 30 packed rows
    with pytest.raises(ValueError, match="longer than max_seqlen"):
        fc.attention_varlen(q, k, v, cu_q, cu_k, 10, 20)
    with pytest.raises(ValueError, match="end at the packed rows"):
        fc.attention_varlen(q, k, v, bad, cu_k, 25, 20)


@pytest.mark.parametrize("dynamic", [False, True])
def test_varlen_under_torch_compile(rt, dynamic):
    """fullgraph=True: flashcore::attention_varlen is one opaque op; with dynamic=True a new
    packing (other lengths, other total) reuses the graph."""
    def fn(q, k, v, cq, ck, max_len):
        return fc.attention_varlen(q, k, v, cq, ck, max_len, max_len, causal=True, window=(64, 0), softcap=30.0)

    compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic)
    for seed, lens in enumerate([[100, 300, 7], [250, 33, 120, 64]]):
        q, k, v, cu_q, cu_k = packed(lens, lens, 4, 2, 64, torch.float16, seed=6 + seed)
        assert torch.equal(compiled(q, k, v, cu_q, cu_k, max(lens)), fn(q, k, v, cu_q, cu_k, max(lens)))
