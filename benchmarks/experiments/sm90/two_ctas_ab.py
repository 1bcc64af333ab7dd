"""Tiles of one grid cell against each other and SDPA, timed as the grid times (one call at a time,
events, 500 ms alone first) and queued back to back (kernel time, host hidden); interleaved rounds,
SDPA in the same rounds; the SM clock and power sampled right after each isolated timing (the H200
runs at its power cap on the grid's cells, so a kernel's clock is part of its time). Written for the
two-CTA tiles (_c2, the default CELLS) against the tiles they replaced; any tiles by --cell (e.g. the
stream-K twins against their tiles, benchmarks/NOTES.md 2026-11-29 05:03-). Needs the variants built
(device_run.sh build, or a carried build).

    python benchmarks/experiments/sm90/two_ctas_ab.py [--rounds 3] [--json PATH]
        [--cell D,S,causal|full,TILE,TILE,...]...   (default: CELLS below)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/, as lazy_rescale_ab.py
from common import gpu_state  # noqa: E402

from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_calls, time_queued

F = torch.nn.functional
CELLS = [  # (D, S, causal, [c2 tile, tile it replaced])
    (64, 512, True, ["m64_n128_s2_sch1_p1_kv1_c2", "m128_n128_s2_sch2_p1_kv1"]),
    (64, 1024, True, ["m64_n128_s2_sch1_p1_kv1_c2", "m128_n128_s2_sch2_p1_kv1"]),
    (64, 512, False, ["m64_n128_s2_sch1_p1_kv1_c2", "m192_n128_s2_sch1_p1_kv1"]),
    (128, 512, True, ["m64_n64_s2_sch1_p1_kv1_c2", "m128_n128_s2_sch2_p1_kv1"]),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--cell", action="append", default=[],
                    help="D,S,causal|full,tile,tile,... (tile: the name after the mask, e.g. m64_n128_s2_sch1_p1_kv1_c2)")
    args = ap.parse_args()
    cells = [(int(d), int(s), m == "causal", tiles) for d, s, m, *tiles in (c.split(",") for c in args.cell)] or CELLS
    rt = get_runtime()
    results = []
    for d, s, causal, tiles in cells:
        b, h = 16384 // s, 2048 // d
        q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16)
        mask = "causal" if causal else "full"
        # Timed as attention() runs without return_lse (lse_unused).
        impls = {t: (lambda n=f"fc_sm90_bf16_d{d}_{mask}_{t}": rt.run(n, q, k, v, d ** -0.5, lse_unused=True))
                 for t in tiles}
        impls["sdpa"] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        iso = {n: [] for n in impls}
        queued = {n: [] for n in impls}
        state = {n: [] for n in impls}
        for _ in range(args.rounds):
            for n, fn in impls.items():
                iso[n].append(time_calls(fn, reps=30, warmup_ms=500).median_us)
                state[n].append(gpu_state())
                queued[n].append(time_queued(fn).median_us)
        row = {"cell": f"D{d} S{s} {mask}", "isolated_us": {n: statistics.median(x) for n, x in iso.items()},
               "queued_us": {n: statistics.median(x) for n, x in queued.items()}, "rounds_isolated": iso,
               "rounds_queued": queued, "rounds_gpu_state": state}
        results.append(row)
        clock = {n: statistics.median(x.get("sm_clock_mhz", 0) for x in st) for n, st in state.items()}
        print(row["cell"], " | ".join(f"{n}: iso {row['isolated_us'][n]:.1f} queued {row['queued_us'][n]:.1f}"
                                       f" ({clock[n]:.0f} MHz)" for n in impls), flush=True)
    if args.json:
        json.dump({"device": torch.cuda.get_device_name(), "cells": results}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
