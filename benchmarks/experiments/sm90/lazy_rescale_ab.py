"""Lazy rescaling of O (the `lazy_rescale` axis, `_lr1`) against the same tile without it, beside SDPA,
on the grid's cells (bf16): per cell the tile the shipped table picks, as its eager and its `_lr1` twin, both run by
name (rt.run, no dispatch), SDPA's default backend as the control, interleaved rounds of per-call event
medians with the grid's warm-up before each timing (the card at its power cap, as bench_sdpa times).

    python benchmarks/experiments/sm90/lazy_rescale_ab.py [--d 128 ...] [--rounds 3] [--warmup-ms 500] [--json PATH]

Both variants' outputs and LSEs are checked against the fp32 reference on sampled rows first; a cell
whose variants are not both built is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch

from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_rounds
from flashcore_cutlass.tune import TORCH_DTYPES, baseline_grid

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import gpu_state  # noqa: E402

F = torch.nn.functional
# The H100 table this A/B read (retired from the package when the sm90 kernels changed after 03c7285).
SHIPPED = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "tuned_h100-retired-after-03c7285.json"


def shipped_winners() -> dict[str, str]:
    return {r["problem_key"]: r["variant"] for r in json.loads(SHIPPED.read_text())["rows"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, action="append")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup-ms", type=float, default=500.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    rt = get_runtime()
    built = set(rt.hashes)
    winners = shipped_winners()
    rows = []
    for p in baseline_grid("bf16"):
        if args.d and p.head_dim not in args.d:
            continue
        winner = winners.get(str(p.key))
        # The shipped winner or its eager twin (the table names the lazy twins since 2026-11-27).
        eager = winner.removesuffix("_lr1") if winner else None
        lazy = f"{eager}_lr1" if eager else None
        if eager is None or not {eager, lazy} <= built:
            print(f"{p}: skipped (shipped winner {eager} or its _lr1 twin not built)", flush=True)
            continue
        q, k, v = random_qkv(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, TORCH_DTYPES[p.dtype])
        scale = p.head_dim ** -0.5
        impls = {
            "eager": lambda: rt.run(eager, q, k, v, scale),
            "lazy": lambda: rt.run(lazy, q, k, v, scale),
            "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=p.causal),
        }
        sampled = sample_rows(p.seqlen_q, count=128, device=q.device)
        ref, ref_lse = reference_attention(q, k, v, p.causal, rows=sampled)
        errors = {}
        for name in ("eager", "lazy"):
            out, lse = impls[name]()
            errors[name] = {"out": (out[:, :, sampled].float() - ref).abs().max().item(),
                            "lse_rel": ((lse[:, :, sampled] - ref_lse).abs() / ref_lse.abs().clamp_min(1)).max().item()}
        states = {n: [] for n in impls}
        per = time_rounds(impls, args.rounds, after=lambda name: states[name].append(gpu_state()),
                          reps=20, warmup=3, min_ms=30, warmup_ms=args.warmup_ms)
        us = {n: statistics.median(t) for n, t in per.items()}
        row = {"problem": str(p), "head_dim": p.head_dim, "seqlen": p.seqlen_q, "causal": p.causal, "eager": eager,
               "us": us, "rounds_us": per, "rounds_gpu_state": states, "errors": errors,
               "tflops": {n: p.flops / t / 1e6 for n, t in us.items()}}
        rows.append(row)
        clk = {n: statistics.median(s["sm_clock_mhz"] for s in states[n]) for n in impls}
        print(f"D{p.head_dim:3d} S{p.seqlen_q:5d} {'causal' if p.causal else 'full  '} "
              f"eager {us['eager']:8.1f} lazy {us['lazy']:8.1f} sdpa {us['sdpa']:8.1f} us | lazy/eager "
              f"{us['eager'] / us['lazy']:.3f}x, x SDPA {us['sdpa'] / us['eager']:.3f} -> {us['sdpa'] / us['lazy']:.3f} | "
              f"MHz {clk['eager']:.0f}/{clk['lazy']:.0f}/{clk['sdpa']:.0f} | err {errors['lazy']['out']:.4f} "
              f"lse {errors['lazy']['lse_rel']:.1e}  {eager.replace('fc_sm90_bf16_', '')}", flush=True)
    if rows:
        geo = lambda key: math.exp(statistics.mean(math.log(r["us"]["sdpa"] / r["us"][key]) for r in rows))  # noqa: E731
        gain = math.exp(statistics.mean(math.log(r["us"]["eager"] / r["us"]["lazy"]) for r in rows))
        print(f"geo-mean x SDPA: eager {geo('eager'):.3f}, lazy {geo('lazy'):.3f}; lazy over eager {gain:.3f}x "
              f"({len(rows)} cells)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "warmup_ms": args.warmup_ms, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
