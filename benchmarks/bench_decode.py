"""Decoding against a KV cache with grouped-query attention: one query row per head, and
speculative decoding (a few draft tokens per sequence, bottom-right causal), the model shapes of
four public GQA families, ours against SDPA's default backend, same run.

Implementations, timed interleaved round by round (medians over rounds):

- ``flashcore``: attention(q, k, v, causal="bottom_right", window=..., softcap=...): dispatch
  packs each key/value head's group of query heads into rows: with one query row per head as the
  rows of one unmasked problem (problem.gqa_packed; the binding's fwd_pack_gqa), with a few as the
  rows of a packing variant's tiles, each keeping its query position (problem.gqa_row_packed);
- ``per_head``: the same call the way it runs unpacked: the variant dispatch picks for the
  per-head (masked, bottom-right) problem, one 64-row tile per query head holding its rows;
- ``sdpa``: F.scaled_dot_product_attention(q, k, v, enable_gqa=True); a window, or with several
  query rows the bottom-right mask, as a boolean attn_mask of the keys each row sees; without
  softcap (SDPA has none: its time is of the uncapped problem).

Packed variable-length sequences (``VARLEN_CASES``, continuous batching: caches of different
lengths, attention_varlen) are timed likewise, SDPA on the batch padded to the longest cache.

Times are per call of calls replayed from one CUDA graph. Each call reads a KV cache of its own
(copies rotate, at least 200 MB in all, more than the 50 MB L2), as the layers of a model do: a
decoding step reads every layer's cache once. The bandwidth column is the K/V bytes a call must
read (the keys its rows see) over its time.

    python benchmarks/bench_decode.py [--rounds 3] [--only NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.api import SUPPORTED_DTYPES
from flashcore_cutlass.problem import Problem, gqa_packed, gqa_row_packed
from flashcore_cutlass.reference import random_qkv, reference_attention, visible_range
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph
from flashcore_cutlass.tune import COLD_KV_BYTES, mask_runner

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import environment, format_table, save  # noqa: E402

F = torch.nn.functional

# name: (B, Hq, Hkv, Sk, D, window, softcap, Sq), bf16, bottom-right: one query row per head, or
# (speculative decoding) a few.
CASES = {
    "llama3-8b-b1-8k": (1, 32, 8, 8192, 128, None, None, 1),
    "llama3-8b-b3-8k": (3, 32, 8, 8192, 128, None, None, 1),  # a batch between two buckets' tops (B2, B4)
    "llama3-8b-b8-8k": (8, 32, 8, 8192, 128, None, None, 1),
    "llama3-8b-b1-32k": (1, 32, 8, 32768, 128, None, None, 1),
    "qwen2-7b-b4-4k": (4, 28, 4, 4096, 128, None, None, 1),
    "mistral-7b-window-b4-16k": (4, 32, 8, 16384, 128, (4096, 0), None, 1),
    "gemma2-9b-softcap-b2-8k": (2, 16, 8, 8192, 256, None, 50.0, 1),
    "llama3-8b-spec4-b1-8k": (1, 32, 8, 8192, 128, None, None, 4),
    "llama3-8b-spec8-b4-4k": (4, 32, 8, 4096, 128, None, None, 8),
    "qwen2-7b-spec4-b1-4k": (1, 28, 4, 4096, 128, None, None, 4),
    "gemma2-9b-softcap-spec4-b2-8k": (2, 16, 8, 8192, 256, None, 50.0, 4),
    "llama3.2-1b-spec4-b1-8k": (1, 32, 8, 8192, 64, None, None, 4),
}
# Packed variable-length sequences (attention_varlen; continuous batching): name -> (Hq, Hkv, D,
# keys of each sequence's cache, query rows per sequence), bf16, bottom-right.
VARLEN_CASES = {
    "llama3-8b-varlen-decode-8seq": (32, 8, 128, [512, 1024, 2048, 3000, 4096, 6000, 8192, 700], 1),
    "llama3-8b-varlen-spec4-8seq": (32, 8, 128, [512, 1024, 2048, 3000, 4096, 6000, 8192, 700], 4),
}
IMPLS = ("flashcore", "per_head", "sdpa")
COLD_BYTES = COLD_KV_BYTES  # K/V copies rotate until this many bytes (beyond the 50 MB L2), as the tuner's
GRAPH_CALLS = 24


# ---- pure helpers (tests/benchmarks/test_bench_decode.py runs them on CPU) ----

def cache_copies(kv_bytes: int, cold_bytes: int = COLD_BYTES, most: int = GRAPH_CALLS) -> int:
    """KV caches to rotate through so that consecutive calls do not find theirs in L2."""
    return max(1, min(most, -(-cold_bytes // max(kv_bytes, 1))))


def read_bytes(b: int, hkv: int, keys: int, d: int, dv: int, element_bytes: int = 2) -> int:
    """K/V bytes a decoding call must read: every key/value head's visible keys, once."""
    return b * hkv * keys * (d + dv) * element_bytes


def visible_mask(sk: int, key_range: tuple[int, int], device) -> torch.Tensor:
    """(1, Sk) bool: the keys the one query row sees (SDPA's attn_mask for a window)."""
    cols = torch.arange(sk, device=device)
    return ((cols >= key_range[0]) & (cols < key_range[1]))[None, :]


def rows_mask(sq: int, sk: int, window, device) -> torch.Tensor:
    """(Sq, Sk) bool: the keys each query row sees, bottom-right causal with the window if any."""
    lo, hi = visible_range("bottom_right", window, sq, sk)
    rows, cols = torch.arange(sq, device=device)[:, None], torch.arange(sk, device=device)[None, :]
    visible = cols <= rows + hi
    return visible & (cols >= rows + lo) if lo is not None else visible


def key_span(sq: int, sk: int, window) -> tuple[int, int]:
    """[first, end) of the keys any of the Sq bottom-right rows sees."""
    lo, hi = visible_range("bottom_right", window, sq, sk)
    return max(0, lo if lo is not None else 0), min(sk, sq - 1 + hi + 1)


# ---- GPU measurements ----

def time_interleaved(fns: dict, caches: list, rounds: int) -> tuple[dict, dict]:
    """Per-call graph time of each implementation, rounds interleaved (drift hits every one alike),
    each call on the next of ``caches`` (argument tuples, so consecutive calls read different K/V):
    (times of each round, median over rounds), per implementation of IMPLS."""
    def rotating(fn):
        turn = itertools.count()
        return lambda: fn(*caches[next(turn) % len(caches)])

    per = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            per[impl].append(time_graph(rotating(fns[impl]), calls_per_graph=GRAPH_CALLS, reps=10).median_us)
    return per, {impl: statistics.median(ts) for impl, ts in per.items()}


def packed_problem(per_head: Problem, hkv: int) -> Problem | None:
    """The problem dispatch runs a case as (where a packing variant is built for several rows)."""
    if per_head.seqlen_q == 1:
        return gqa_packed(per_head, hkv)[0]
    return gqa_row_packed(per_head, hkv)


def bench_case(name: str, rounds: int) -> dict:
    b, hq, hkv, sk, d, window, softcap, sq = CASES[name]
    dtype = torch.bfloat16
    rt = get_runtime()
    per_head = Problem(SUPPORTED_DTYPES[dtype], d, True, b, hq, sq, sk, bottom_right=True, window=window,
                       softcap=softcap or 0.0)
    packed = packed_problem(per_head, hkv)
    packed_choice = rt.registry.choose(packed) if sq == 1 or rt.registry.candidates(packed) else None
    key_range = key_span(sq, sk, window)
    kv_bytes = read_bytes(b, hkv, sk, d, d)
    caches = [random_qkv(b, hq, sq, sk, d, dtype, heads_k=hkv) for _ in range(cache_copies(kv_bytes))]
    q, k, v = caches[0]
    per_head_choice = rt.registry.choose(per_head)
    run_per_head = mask_runner(rt, per_head)
    if sq > 1:
        mask = rows_mask(sq, sk, window, q.device)
    else:
        mask = visible_mask(sk, key_range, q.device) if window is not None else None

    def ours(q, k, v):
        return fc.attention(q, k, v, causal="bottom_right", window=window, softcap=softcap)

    def head_by_head(q, k, v):
        return run_per_head(per_head_choice.variant, q, k, v, d ** -0.5)[0]

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    fns = {"flashcore": ours, "per_head": head_by_head, "sdpa": sdpa}
    ref, _ = reference_attention(q, k, v, "bottom_right", window=window, softcap=softcap)
    errors = {impl: (fn(q, k, v).float() - ref).abs().max().item() for impl, fn in fns.items()}
    # Tolerance: twice the per-head kernel's error (SDPA computes another problem under softcap).
    tol = 2 * max(errors["per_head"], errors["sdpa"] if not softcap else 0.0) + 1e-3
    ok = errors["flashcore"] <= tol
    if not ok:
        print(f"{name}: CORRECTNESS CHECK FAILED: {errors} > {tol}", file=sys.stderr)

    per, us = time_interleaved(fns, caches, rounds)
    needed = read_bytes(b, hkv, key_range[1] - key_range[0], d, d)
    return {"case": name, "batch": b, "heads": hq, "heads_k": hkv, "seqlen_q": sq, "seqlen_k": sk, "head_dim": d,
            "window": window, "softcap": softcap, "key_range": key_range, "cache_copies": len(caches),
            "per_head_variant": per_head_choice.variant, "per_head_dispatch": per_head_choice.reason,
            "packed_key": str(packed.key), "packed_variant": packed_choice and packed_choice.variant,
            "packed_dispatch": packed_choice and packed_choice.reason,
            "max_abs_err": errors, "tol": tol, "ok": ok, "rounds_us": per, "graph_us": us,
            "ratio_vs_sdpa": us["flashcore"] / us["sdpa"], "ratio_vs_per_head": us["flashcore"] / us["per_head"],
            "read_gb_per_s": {impl: needed / (t * 1e-6) / 1e9 for impl, t in us.items()}}


def bench_varlen_case(name: str, rounds: int) -> dict:
    """A batch of sequences with caches of different lengths through attention_varlen: ours (dispatch
    packs each group's query heads into rows where a packing variant is built), the per-head variant
    on the same packed tensors, and SDPA on the batch padded to the longest cache with a boolean mask
    (the padding made once, outside the timing)."""
    hq, hkv, d, lens_k, sq = VARLEN_CASES[name]
    dtype, b = torch.bfloat16, len(lens_k)
    rt = get_runtime()
    cu = lambda lens: torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32,  # noqa: E731
                                   device="cuda")
    cu_q, cu_k, max_k = cu([sq] * b), cu(lens_k), max(lens_k)
    per_head = Problem(SUPPORTED_DTYPES[dtype], d, True, b, hq, sq, max_k, bottom_right=True)
    packed = gqa_row_packed(per_head, hkv, min_rows=1)
    packed_choice = rt.registry.choose(packed) if rt.registry.candidates(packed) else None
    per_head_choice = rt.registry.choose(per_head)
    kv_bytes = read_bytes(1, hkv, sum(lens_k), d, d)

    def make():
        q = torch.randn(b * sq, hq, d, device="cuda", dtype=dtype)
        k, v = (torch.randn(sum(lens_k), hkv, d, device="cuda", dtype=dtype) for _ in range(2))
        # SDPA's padded batch: (B, Hkv, max_k, D) with each cache at the start of its row.
        kp, vp = (torch.zeros(b, hkv, max_k, d, device="cuda", dtype=dtype) for _ in range(2))
        for i, (k0, n) in enumerate(zip(cu_k.tolist(), lens_k)):
            kp[i, :, :n], vp[i, :, :n] = k[k0:k0 + n].transpose(0, 1), v[k0:k0 + n].transpose(0, 1)
        return q, k, v, kp, vp
    caches = [make() for _ in range(cache_copies(kv_bytes))]
    rows, cols = torch.arange(sq, device="cuda")[:, None], torch.arange(max_k, device="cuda")[None, :]
    mask = torch.stack([cols <= rows + n - sq for n in lens_k])[:, None]  # (B, 1, Sq, max_k)

    def ours(q, k, v, kp, vp):
        return fc.attention_varlen(q, k, v, cu_q, cu_k, sq, max_k, causal="bottom_right")

    def head_by_head(q, k, v, kp, vp):
        return rt.fwd(rt.ids[per_head_choice.variant], q, k, v, d ** -0.5, None, None, 0, None, 0.0, cu_q, cu_k, sq,
                      max_k, True)[0]

    def sdpa(q, k, v, kp, vp):
        return F.scaled_dot_product_attention(q.view(b, sq, hq, d).transpose(1, 2), kp, vp, attn_mask=mask,
                                              enable_gqa=True)

    q, k, v, kp, vp = caches[0]
    ref = sdpa(q, k, v, kp, vp).transpose(1, 2).reshape(b * sq, hq, d).float()
    errors = {impl: (fn(q, k, v, kp, vp).float() - ref).abs().max().item() for impl, fn in
              (("flashcore", ours), ("per_head", head_by_head))}
    ok = errors["flashcore"] <= 2 * errors["per_head"] + 1e-2
    fns = {"flashcore": ours, "per_head": head_by_head, "sdpa": sdpa}

    per, us = time_interleaved(fns, caches, rounds)
    return {"case": name, "batch": b, "heads": hq, "heads_k": hkv, "seqlen_q": sq, "seqlens_k": lens_k, "head_dim": d,
            "cache_copies": len(caches), "per_head_variant": per_head_choice.variant,
            "packed_key": str(packed.key), "packed_variant": packed_choice and packed_choice.variant,
            "max_abs_err_vs_sdpa": errors, "ok": ok, "rounds_us": per, "graph_us": us,
            "ratio_vs_sdpa": us["flashcore"] / us["sdpa"], "ratio_vs_per_head": us["flashcore"] / us["per_head"],
            "read_gb_per_s": {impl: kv_bytes / (t * 1e-6) / 1e9 for impl, t in us.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", action="append", choices=sorted(CASES) + sorted(VARLEN_CASES))
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for name in args.only or [*CASES, *VARLEN_CASES]:
        row = (bench_varlen_case if name in VARLEN_CASES else bench_case)(name, args.rounds)
        rows.append(row)
        print(f"{name}: ours {row['graph_us']['flashcore']:.1f} us, per head {row['graph_us']['per_head']:.1f}, "
              f"SDPA {row['graph_us']['sdpa']:.1f} ({row['ratio_vs_sdpa']:.2f}x SDPA's time)", flush=True)
    path = save("bench_decode", {"environment": environment(), "rounds": args.rounds, "graph_calls": GRAPH_CALLS,
                                 "rows": rows}, args.json)
    headers = ["case", "ours us", "per-head us", "SDPA us", "x SDPA", "x per-head", "ours GB/s", "check"]
    table = [[r["case"], f"{r['graph_us']['flashcore']:.1f}", f"{r['graph_us']['per_head']:.1f}",
              f"{r['graph_us']['sdpa']:.1f}", f"{r['ratio_vs_sdpa']:.2f}", f"{r['ratio_vs_per_head']:.2f}",
              f"{r['read_gb_per_s']['flashcore']:.0f}", "ok" if r["ok"] else "FAIL"] for r in rows]
    print(f"\nresults: {path}\n" + format_table(headers, table))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
