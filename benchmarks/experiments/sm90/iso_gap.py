"""Where the isolated call's extra time goes: the grid times one call at a time (events around a
call to an idle GPU, then a synchronize), and at the short D64 causal cells our calls lose more to
that method than SDPA's (one call at a time minus queued back to back: 31-45 us against 19-30 us,
benchmarks/NOTES.md, session of 2026-11-28 23:47-). Per implementation, interleaved rounds:

- iso:    time_calls, the grid's method (the GPU waits for the call's host work);
- hidden: the same events, but a sleep kernel queued first, so the call's launches are queued
          before the start event runs (the host's share removed, the GPU-side launch chain kept);
- queued: time_queued (back to back, the host runs ahead);
- host:   host_us_isolated (host time of one call to an idle GPU);
- kernels: CUPTI durations (torch.profiler) of every GPU operation of one isolated call, by name;
- gaps:   with --gaps, the GPU's idle time around the call's operations, host hidden: a sleep kernel,
          a marker kernel, the call, a marker kernel; from the CUPTI timestamps, the marker's end to
          the call's first operation, between its operations, and its last one to the next marker.

    python benchmarks/experiments/sm90/iso_gap.py [--rounds 3] [--json PATH] [--cell D,S,causal|full,IMPL,...]...
    IMPL: sdpa, api (flashcore_cutlass.attention: the grid's path), or a tile name after the mask
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/, as two_ctas_ab.py
from common import gpu_state  # noqa: E402

import flashcore_cutlass
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_isolated, time_calls, time_queued

F = torch.nn.functional
SLEEP_CYCLES = 400_000  # ~200 us at the H200's clocks: longer than any call's host time here


def time_hidden(fn, reps: int = 30) -> float:
    """Median us of fn() between events whose start runs after a sleep kernel queued first."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times)


def gpu_ops(fn, calls: int = 20) -> dict[str, float]:
    """Median CUPTI duration (us) per call of each GPU operation of fn(), isolated calls."""
    fn()
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
            torch.cuda.synchronize()
    per = defaultdict(list)
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            per[e.name[:70]].append(e.time_range.elapsed_us())
    return {name: statistics.median(x) * len(x) / calls for name, x in per.items()}


def gpu_gaps(fn, calls: int = 20) -> dict[str, float]:
    """Median GPU idle gaps (us) around and inside one call, the host's launches queued behind a sleep."""
    from torch.profiler import ProfilerActivity, profile

    marker = torch.zeros(1, device="cuda")
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            torch.cuda._sleep(SLEEP_CYCLES)
            marker.add_(1)
            fn()
            marker.add_(1)
            torch.cuda.synchronize()
    ops = sorted(((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                  if str(getattr(e, "device_type", "")).endswith("CUDA")), key=lambda x: x[0])
    def is_sleep(op) -> bool:  # torch.cuda._sleep launches ATen's spin_kernel
        return "spin_kernel" in op[2] or "sleep" in op[2].lower()

    gaps = defaultdict(list)
    i = 0
    while i < len(ops):
        if not is_sleep(ops[i]):
            i += 1
            continue
        j = i + 2  # ops[i + 1] is the first marker
        inner = []
        while j < len(ops) and not is_sleep(ops[j]):
            inner.append(ops[j])
            j += 1
        if len(inner) >= 2:  # the call's operations, then the second marker
            call, after = inner[:-1], inner[-1]
            gaps["before"].append(call[0][0] - ops[i + 1][1])
            gaps["between"].append(sum(b[0] - a[1] for a, b in zip(call, call[1:])))
            gaps["after"].append(after[0] - call[-1][1])
            gaps["span"].append(after[0] - ops[i + 1][1])
        i = j
    out = {k: statistics.median(x) for k, x in gaps.items()}
    out["ops_seen"] = sorted({op[2][:50] for op in ops})  # what the trace held (the parse's check)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--cell", action="append", default=[])
    ap.add_argument("--gaps", action="store_true", help="only the GPU gaps around each call (no timings)")
    args = ap.parse_args()
    cells = [(int(d), int(s), m == "causal", impls) for d, s, m, *impls in (c.split(",") for c in args.cell)]
    rt = get_runtime()
    results = []
    for d, s, causal, names in cells:
        b, h = 16384 // s, 2048 // d
        q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16)
        mask = "causal" if causal else "full"
        impls = {}
        for n in names:
            if n == "sdpa":
                impls[n] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            elif n == "api":
                impls[n] = lambda: flashcore_cutlass.attention(q, k, v, causal=causal)
            else:
                impls[n] = lambda t=f"fc_sm90_bf16_d{d}_{mask}_{n}": rt.run(t, q, k, v, d ** -0.5)
        if args.gaps:
            gaps = {n: gpu_gaps(fn) for n, fn in impls.items()}
            results.append({"cell": f"D{d} S{s} {mask}", "gpu_gaps_us": gaps})
            print(f"D{d} S{s} {mask}", " | ".join(f"{n[:30]}: " + " ".join(f"{k} {t:.2f}" for k, t in g.items() if k != "ops_seen")
                                                  for n, g in gaps.items()), flush=True)
            continue
        rows = {n: defaultdict(list) for n in impls}
        for _ in range(args.rounds):
            for n, fn in impls.items():
                rows[n]["iso"].append(time_calls(fn, reps=30, warmup_ms=300).median_us)
                rows[n]["mhz"].append(gpu_state().get("sm_clock_mhz", 0.0))
                rows[n]["hidden"].append(time_hidden(fn))
                rows[n]["queued"].append(time_queued(fn).median_us)
                rows[n]["host"].append(host_us_isolated(fn).median_us)
        ops = {n: gpu_ops(fn) for n, fn in impls.items()}
        cell = {"cell": f"D{d} S{s} {mask}", "rounds": rows, "gpu_ops_us": ops}
        results.append(cell)
        print(cell["cell"])
        for n in impls:
            med = {key: statistics.median(x) for key, x in rows[n].items()}
            kern = sum(ops[n].values())
            print(f"  {n[:38]:38s} iso {med['iso']:7.1f} hidden {med['hidden']:7.1f} queued {med['queued']:7.1f} "
                  f"host {med['host']:5.1f} gpu-ops {kern:7.1f} ({med['mhz']:.0f} MHz)  "
                  + "; ".join(f"{k[:40]} {t:.1f}" for k, t in ops[n].items()), flush=True)
    if args.json:
        json.dump({"device": torch.cuda.get_device_name(), "cells": results}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
