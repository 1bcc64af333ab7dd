"""flashcore (registry-dispatched) against torch SDPA in the same run on the same card.

Reproduces BASELINES.md: the FA3-paper grid (B*S = 16384, H*D = 2048) and the launch-bound
small shapes (per-call from Python and as CUDA-graph replays); ``--shape`` times your own shapes
instead (grouped-query heads with ``--heads-k``). SDPA is timed with its default backend (cuDNN on
this torch) and its FlashAttention-2 backend. Every problem's output and LSE are first checked
against the fp32 reference (sampled rows, the tuner's tolerance). Every number is a median of
interleaved rounds: a ratio under ~3 % in one cell is noise (BASELINES.md).

    python benchmarks/bench_sdpa.py [--grid] [--small] [--d 128] [--s 512] [--json out.json] [--plot [out.png]]
    python benchmarks/bench_sdpa.py --shape 1,28,8192,8192 --heads-k 4 --head-dim 128 --causal [--dtype bf16]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import flashcore_cutlass as fc
from flashcore_cutlass.api import MAX_HEAD_DIM
from flashcore_cutlass.problem import Problem, dispatched_problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.registry import MissingVariantError
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph, time_python_calls, time_rounds
from flashcore_cutlass.tune import TORCH_DTYPES, baseline_grid, small_shapes

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import add_warmup_argument, check_against_reference, environment, format_table, gpu_state, save  # noqa: E402
from plot_grid import plot_or_explain  # noqa: E402  (imports matplotlib only when plotting)

F = torch.nn.functional


def _sdpa(backend):
    def run(q, k, v, causal):
        with sdpa_kernel([backend]):
            return _default(q, k, v, causal)

    return run


def _default(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.shape[1] != q.shape[1])


def _ours(q, k, v, causal):
    return fc.attention(q, k, v, causal=causal)


IMPLS = {"flashcore": _ours, "sdpa": _default, "sdpa_flash": _sdpa(SDPBackend.FLASH_ATTENTION)}


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """"B,H,Sq,Sk" (the tuner's --shape) as four positive ints."""
    try:
        dims = tuple(int(x) for x in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"--shape wants B,H,Sq,Sk (four positive integers), got {text!r}")
    return dims


# Implementations a problem may lack: SDPA's FA2 backend refuses some (e.g. head dims it lacks).
OPTIONAL_IMPLS = ("sdpa_flash",)


def runnable(impls: dict, q, k, v, causal: bool) -> dict:
    """The implementations that run this problem: each optional one is called once, and a
    refusal leaves it out of the timing, named on stderr (ours and SDPA's default always run)."""
    ok = {}
    for name, fn in impls.items():
        if name in OPTIONAL_IMPLS:
            try:
                fn(q, k, v, causal)
            except RuntimeError as exc:
                print(f"note: {name} does not run this problem ({str(exc).splitlines()[0][:120]})", file=sys.stderr)
                continue
        ok[name] = fn
    return ok


def bench_problem(p: Problem, rounds: int, graphs: bool, warmup_ms: float = 0.0) -> dict:
    """``p`` with its key/value heads (heads_kv) for grouped-query attention."""
    q, k, v = random_qkv(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, TORCH_DTYPES[p.dtype], heads_k=p.heads_k)
    rt = get_runtime()
    chosen = rt.registry.choose(dispatched_problem(p, p.heads_k, rt.has_candidates))  # what attention() runs
    check = check_against_reference(q, k, v, p.causal)
    if not check["ok"]:
        print(f"{p}: CORRECTNESS CHECK FAILED: {check}", file=sys.stderr)
    impls = runnable(IMPLS, q, k, v, p.causal)
    states = {name: [] for name in impls}  # the card's clock and power right after each timing
    per = time_rounds({name: (lambda fn=fn: fn(q, k, v, p.causal)) for name, fn in impls.items()}, rounds,
                      after=lambda name: states[name].append(gpu_state()),
                      reps=20, warmup=3, min_ms=30, warmup_ms=warmup_ms)
    row = {
        "problem": str(p), "dtype": p.dtype, "batch": p.batch, "heads": p.heads, "heads_k": p.heads_k,
        "seqlen_q": p.seqlen_q, "seqlen_k": p.seqlen_k, "head_dim": p.head_dim, "causal": p.causal,
        "variant": chosen.variant, "dispatch": chosen.reason, "check": check,
        "us": {n: statistics.median(v) for n, v in per.items()}, "rounds_us": per, "rounds_gpu_state": states,
    }
    row["tflops"] = {n: p.flops / us / 1e6 for n, us in row["us"].items()}
    row["speedup_vs_sdpa"] = row["us"]["sdpa"] / row["us"]["flashcore"]
    row["speedup_vs_flash"] = row["us"]["sdpa_flash"] / row["us"]["flashcore"] if "sdpa_flash" in row["us"] else None
    if graphs:
        row["graph_us"] = {n: time_graph(lambda: fn(q, k, v, p.causal)).median_us for n, fn in impls.items()}
        row["call_us"] = {n: time_python_calls(lambda: fn(q, k, v, p.causal)).median_us for n, fn in impls.items()}
    return row


def throughput_table(rows: list[dict]) -> str:
    def fa2(r, key):
        return "-" if r["speedup_vs_flash"] is None else key(r)

    return format_table(
        ["D", "causal", "Sq", "Sk", "BxH", "Hkv", "ours us", "ours TF", "sdpa TF", "FA2 TF", "x sdpa", "x FA2", "check",
         "variant"],
        [[r["head_dim"], "yes" if r["causal"] else "no", r["seqlen_q"], r["seqlen_k"], f"{r['batch']}x{r['heads']}",
          r.get("heads_k", r["heads"]), f"{r['us']['flashcore']:.1f}", f"{r['tflops']['flashcore']:.0f}",
          f"{r['tflops']['sdpa']:.0f}", fa2(r, lambda r: f"{r['tflops']['sdpa_flash']:.0f}"),
          f"{r['speedup_vs_sdpa']:.3f}", fa2(r, lambda r: f"{r['speedup_vs_flash']:.3f}"),
          "ok" if r["check"]["ok"] else "FAIL", r["variant"].replace("fc_", "")] for r in rows])


def geo_mean(values) -> float:
    values = [x for x in values if x is not None]
    return math.exp(statistics.mean(math.log(x) for x in values)) if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="store_true", help="the throughput grid (default: grid and small)")
    ap.add_argument("--small", action="store_true", help="the launch-bound small shapes")
    ap.add_argument("--d", type=int, action="append", help="head dims of the grid (default all)")
    ap.add_argument("--s", type=int, action="append", help="sequence lengths of the grid (default all)")
    ap.add_argument("--shape", type=parse_shape, action="append", metavar="B,H,Sq,Sk",
                    help="time these shapes instead of the grid and the small shapes (with --dtype, --head-dim, "
                         "--heads-k, --causal)")
    ap.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="bf16", help="with --shape (default bf16)")
    ap.add_argument("--head-dim", type=int, default=128, help="with --shape (default 128)")
    ap.add_argument("--heads-k", type=int, help="with --shape: key/value heads (grouped-query attention; "
                                                "default H)")
    ap.add_argument("--causal", action="store_true", help="with --shape: causal (torch's is_causal, top-left)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds per cell; the cell's median over them (default 3; one call's time moves "
                         "+-4 %% between rounds at the short cells, so 5 or more to place them within +-2 %%: "
                         "benchmarks/NOTES.md, 2026-11-29 18:19-)")
    add_warmup_argument(ap)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--plot", nargs="?", const="", metavar="PNG",
                    help="plot TFLOP/s against S per head dim (needs matplotlib); default path: the results "
                         "JSON's, with .png")
    args = ap.parse_args(argv)
    if args.shape and (args.grid or args.small):
        ap.error("--shape times its own shapes: leave out --grid and --small")
    if args.heads_k is not None and not args.shape:
        ap.error("--heads-k goes with --shape")
    if args.head_dim % 8 or not 8 <= args.head_dim <= MAX_HEAD_DIM:
        ap.error(f"--head-dim {args.head_dim}: attention() takes multiples of 8 up to {MAX_HEAD_DIM}")
    for _, h, _, _ in args.shape or ():
        if args.heads_k is not None and (args.heads_k < 1 or h % args.heads_k):
            ap.error(f"--heads-k {args.heads_k} must divide the {h} query heads of every --shape")
    do_grid = not args.shape and (args.grid or not args.small)
    do_small = not args.shape and (args.small or not args.grid)

    rows = []
    if do_grid:
        for p in baseline_grid("bf16"):
            if (not args.d or p.head_dim in args.d) and (not args.s or p.seqlen_q in args.s):
                rows.append(bench_problem(p, args.rounds, graphs=False, warmup_ms=args.warmup_ms))
                print(f"{p}: {rows[-1]['speedup_vs_sdpa']:.3f}x SDPA", file=sys.stderr)
    shapes = []
    for b, h, sq, sk in args.shape or ():
        p = Problem(args.dtype, args.head_dim, args.causal, b, h, sq, sk, heads_kv=args.heads_k)
        shapes.append(bench_problem(p, args.rounds, graphs=False, warmup_ms=args.warmup_ms))
        print(f"{p}: {shapes[-1]['speedup_vs_sdpa']:.3f}x SDPA", file=sys.stderr)
    small = []
    if do_small:
        for p in small_shapes():
            try:
                small.append(bench_problem(p, args.rounds, graphs=True))
            except MissingVariantError as exc:  # e.g. a build of one dtype: the grid's results still count
                print(f"skipped {p}: {exc}", file=sys.stderr)

    payload = {"environment": environment(), "rounds": args.rounds, "warmup_ms": args.warmup_ms, "grid": rows,
               "small": small, "shapes": shapes}
    path = save("bench_sdpa", payload, args.json)

    for name, table_rows in (("grid", rows), ("shapes", shapes)):
        if table_rows:
            print(throughput_table(table_rows))
            print(f"{name} geo-mean speed-up: {geo_mean(r['speedup_vs_sdpa'] for r in table_rows):.3f}x SDPA default, "
                  f"{geo_mean(r['speedup_vs_flash'] for r in table_rows):.3f}x SDPA FA2")
    if small:
        print(format_table(
            ["dtype", "B,H,S,D", "ours call", "sdpa call", "ours graph", "sdpa graph", "FA2 graph", "x sdpa(graph)"],
            [[r["dtype"], f"{r['batch']},{r['heads']},{r['seqlen_q']},{r['head_dim']}",
              f"{r['call_us']['flashcore']:.2f}", f"{r['call_us']['sdpa']:.2f}", f"{r['graph_us']['flashcore']:.2f}",
              f"{r['graph_us']['sdpa']:.2f}", f"{r['graph_us'].get('sdpa_flash', float('nan')):.2f}",
              f"{r['graph_us']['sdpa'] / r['graph_us']['flashcore']:.3f}"] for r in small]))
    failed = [r["problem"] for r in rows + shapes + small if not r["check"]["ok"]]
    if failed:
        print(f"CORRECTNESS CHECK FAILED: {', '.join(failed)}", file=sys.stderr)
    print(f"results: {path}")
    if args.plot is not None and not rows:
        print("note: no plot: --plot draws the grid, and this run has none", file=sys.stderr)
    elif args.plot is not None:
        plotted = plot_or_explain(payload, args.plot or path.with_suffix(".png"))
        if plotted:
            print(f"plot: {plotted}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
