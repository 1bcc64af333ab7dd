"""flashcore (registry-dispatched) against torch SDPA in the same run on the same card.

Reproduces BASELINES.md: the FA3-paper grid (B*S = 16384, H*D = 2048) and the launch-bound
small shapes (per-call from Python and as CUDA-graph replays). SDPA is timed with its default
backend (cuDNN on this torch) and its FlashAttention-2 backend. Every number is a median of
interleaved rounds: a ratio under ~3 % in one cell is noise (BASELINES.md).

    python benchmarks/bench_sdpa.py [--grid] [--small] [--d 128] [--s 512] [--json out.json] [--plot [out.png]]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import flashcore_cutlass as fc
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph, time_python_calls, time_rounds
from flashcore_cutlass.tune import TORCH_DTYPES, baseline_grid, small_shapes

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import add_warmup_argument, environment, format_table, gpu_state, save  # noqa: E402
from plot_grid import plot_or_explain  # noqa: E402  (imports matplotlib only when plotting)

F = torch.nn.functional


def _sdpa(backend):
    def run(q, k, v, causal):
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return run


def _default(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _ours(q, k, v, causal):
    return fc.attention(q, k, v, causal=causal)


IMPLS = {"flashcore": _ours, "sdpa": _default, "sdpa_flash": _sdpa(SDPBackend.FLASH_ATTENTION)}


def bench_problem(p: Problem, rounds: int, graphs: bool, warmup_ms: float = 0.0) -> dict:
    q, k, v = random_qkv(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, TORCH_DTYPES[p.dtype])
    rt = get_runtime()
    chosen = rt.registry.choose(p)
    states = {name: [] for name in IMPLS}  # the card's clock and power right after each timing
    per = time_rounds({name: (lambda fn=fn: fn(q, k, v, p.causal)) for name, fn in IMPLS.items()}, rounds,
                      after=lambda name: states[name].append(gpu_state()),
                      reps=20, warmup=3, min_ms=30, warmup_ms=warmup_ms)
    row = {
        "problem": str(p), "dtype": p.dtype, "batch": p.batch, "heads": p.heads, "seqlen_q": p.seqlen_q,
        "seqlen_k": p.seqlen_k, "head_dim": p.head_dim, "causal": p.causal, "variant": chosen.variant,
        "dispatch": chosen.reason, "us": {n: statistics.median(v) for n, v in per.items()},
        "rounds_us": per, "rounds_gpu_state": states,
    }
    row["tflops"] = {n: p.flops / us / 1e6 for n, us in row["us"].items()}
    row["speedup_vs_sdpa"] = row["us"]["sdpa"] / row["us"]["flashcore"]
    row["speedup_vs_flash"] = row["us"]["sdpa_flash"] / row["us"]["flashcore"]
    if graphs:
        row["graph_us"] = {n: time_graph(lambda: fn(q, k, v, p.causal)).median_us for n, fn in IMPLS.items()}
        row["call_us"] = {n: time_python_calls(lambda: fn(q, k, v, p.causal)).median_us for n, fn in IMPLS.items()}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="store_true", help="the throughput grid (default: grid and small)")
    ap.add_argument("--small", action="store_true", help="the launch-bound small shapes")
    ap.add_argument("--d", type=int, action="append", help="head dims of the grid (default all)")
    ap.add_argument("--s", type=int, action="append", help="sequence lengths of the grid (default all)")
    ap.add_argument("--rounds", type=int, default=3)
    add_warmup_argument(ap)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--plot", nargs="?", const="", metavar="PNG",
                    help="plot TFLOP/s against S per head dim (needs matplotlib); default path: the results "
                         "JSON's, with .png")
    args = ap.parse_args(argv)
    do_grid = args.grid or not args.small
    do_small = args.small or not args.grid

    rows = []
    if do_grid:
        for p in baseline_grid("bf16"):
            if (not args.d or p.head_dim in args.d) and (not args.s or p.seqlen_q in args.s):
                rows.append(bench_problem(p, args.rounds, graphs=False, warmup_ms=args.warmup_ms))
                print(f"{p}: {rows[-1]['speedup_vs_sdpa']:.3f}x SDPA", file=sys.stderr)
    small = []
    if do_small:
        for p in small_shapes():
            small.append(bench_problem(p, args.rounds, graphs=True))

    payload = {"environment": environment(), "rounds": args.rounds, "warmup_ms": args.warmup_ms, "grid": rows,
               "small": small}
    path = save("bench_sdpa", payload, args.json)

    if rows:
        print(format_table(
            ["D", "causal", "S", "BxH", "ours us", "ours TF", "sdpa TF", "FA2 TF", "x sdpa", "x FA2", "variant"],
            [[r["head_dim"], "yes" if r["causal"] else "no", r["seqlen_q"], f"{r['batch']}x{r['heads']}",
              f"{r['us']['flashcore']:.1f}", f"{r['tflops']['flashcore']:.0f}", f"{r['tflops']['sdpa']:.0f}",
              f"{r['tflops']['sdpa_flash']:.0f}", f"{r['speedup_vs_sdpa']:.3f}", f"{r['speedup_vs_flash']:.3f}",
              r["variant"].replace("fc_", "")] for r in rows]))
        geo = math.exp(statistics.mean(math.log(r["speedup_vs_sdpa"]) for r in rows))
        geo2 = math.exp(statistics.mean(math.log(r["speedup_vs_flash"]) for r in rows))
        print(f"geo-mean speed-up: {geo:.3f}x SDPA default, {geo2:.3f}x SDPA FA2")
    if small:
        print(format_table(
            ["dtype", "B,H,S,D", "ours call", "sdpa call", "ours graph", "sdpa graph", "FA2 graph", "x sdpa(graph)"],
            [[r["dtype"], f"{r['batch']},{r['heads']},{r['seqlen_q']},{r['head_dim']}",
              f"{r['call_us']['flashcore']:.2f}", f"{r['call_us']['sdpa']:.2f}", f"{r['graph_us']['flashcore']:.2f}",
              f"{r['graph_us']['sdpa']:.2f}", f"{r['graph_us']['sdpa_flash']:.2f}",
              f"{r['graph_us']['sdpa'] / r['graph_us']['flashcore']:.3f}"] for r in small]))
    print(f"results: {path}")
    if args.plot is not None and not rows:
        print("note: no plot: --plot draws the grid, and this run has none (--small only)", file=sys.stderr)
    elif args.plot is not None:
        plotted = plot_or_explain(payload, args.plot or path.with_suffix(".png"))
        if plotted:
            print(f"plot: {plotted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
