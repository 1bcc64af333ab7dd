"""Stream-K A/B on the grid's non-causal cells: each cell's variants and torch SDPA (cuDNN), interleaved.

The grid's cells (bf16, B*S = 16k tokens, H*D = 2048, non-causal); per cell every named variant and SDPA,
each warmed up alone (--warmup-ms), then --rounds rounds in which each is timed in turn over back-to-back
calls (CUDA events, at least --min-ms of GPU time a timing). Prints per cell each variant's time and its ratio
to SDPA and to the cell's first variant (the baseline), a geo-mean per variant last; --json writes it all.

    python3 benchmarks/experiments/sm90/stream_k_ab.py [--rounds 7] [--d 128] [--s 16384] [--json F]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

from flashcore_cutlass.runtime import get_runtime
from tail_waves import timed  # this script's directory is on sys.path when it runs

# Per head dim: the shipped table's non-causal winners (tuned_h200.json of 2026-11-29), then their stream-K
# twins; D64 takes 128-row tiles for stream-K (its 192-row tiles leave a short last tile at every grid length,
# which the dynamic scheduler balances instead).
VARIANTS = {
    64: ["fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1_lr1",
         "fc_sm90_bf16_d64_full_m128_n128_s2_sch1_p1_kv1_lr1", "fc_sm90_bf16_d64_full_m128_n128_s2_sch1_p1_kv1_lr1_sk1",
         "fc_sm90_bf16_d64_full_m128_n128_s2_sch2_p1_kv1_lr1", "fc_sm90_bf16_d64_full_m128_n128_s2_sch2_p1_kv1_lr1_sk1"],
    128: ["fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1_lr1", "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1_lr1_sk1",
          "fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1", "fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1_sk1"],
    256: ["fc_sm90_bf16_d256_full_m128_n64_s2_sch1_p1_kv1_lr1", "fc_sm90_bf16_d256_full_m128_n64_s2_sch1_p1_kv1_lr1_sk1",
          "fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1_lr1", "fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1_lr1_sk1"],
}
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)


def warm(fn, ms: float) -> float:
    """Run fn alone for ~ms milliseconds; return one call's time in us."""
    t = timed(fn, 3)
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        t = timed(fn, max(1, int(2000 / max(t, 1.0))))
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup-ms", type=float, default=200.0)
    ap.add_argument("--min-ms", type=float, default=3.0)
    ap.add_argument("--d", type=int, action="append")
    ap.add_argument("--s", type=int, action="append")
    ap.add_argument("--json")
    args = ap.parse_args()
    rt = get_runtime()
    built = set(rt.ids)
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()}
    print(env)
    cells, ratios = [], {}
    for d in args.d or sorted(VARIANTS):
        names = [n for n in VARIANTS[d] if n in built]
        for s in args.s or LENGTHS:
            b, h = 16384 // s, 2048 // d
            q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            ref = F.scaled_dot_product_attention(q, k, v)
            fns = {"sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
            for n in names:
                out = torch.empty_like(q)
                lse = torch.empty(b, h, s, device="cuda", dtype=torch.float32)
                fns[n] = (lambda n=n, out=out, lse=lse: rt.run(n, q, k, v, d ** -0.5, out, lse))
                fns[n]()
                err = (out - ref).abs().max().item()
                assert err < 2e-2, f"{n} at D{d} S{s}: max|out - sdpa| = {err}"
            calls = {key: max(1, math.ceil(args.min_ms * 1000 / warm(fn, args.warmup_ms))) for key, fn in fns.items()}
            times = {key: [] for key in fns}
            for _ in range(args.rounds):
                for key, fn in fns.items():
                    times[key].append(timed(fn, calls[key]))
            med = {key: statistics.median(t) for key, t in times.items()}
            flops = 4 * b * h * s * s * d
            base = names[0]
            print(f"D{d} S{s} (B{b} H{h}): sdpa {med['sdpa']:.1f} us ({flops / med['sdpa'] / 1e6:.0f} TF)")
            for n in names:
                r_sdpa, r_base = med["sdpa"] / med[n], med[base] / med[n]
                ratios.setdefault(n, []).append(r_sdpa)
                print(f"   {n:58s} {med[n]:9.1f} us {flops / med[n] / 1e6:5.0f} TF  x sdpa {r_sdpa:.3f}  x {base[-20:]} "
                      f"{r_base:.3f}")
            cells.append({"d": d, "s": s, "b": b, "h": h, "median_us": med, "times_us": times})
    print("geo-mean x sdpa over the cells each variant ran:")
    for n, r in ratios.items():
        print(f"   {n:58s} {math.exp(sum(map(math.log, r)) / len(r)):.3f} ({len(r)} cells)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rounds": args.rounds, "warmup_ms": args.warmup_ms, "cells": cells}, f,
                      indent=1)


if __name__ == "__main__":
    main()
