"""Issue 8's small problems: flashcore against SDPA's default backend on launch-bound shapes.

Each shape (non-causal, Sq = Sk, fp16 and bf16) is checked against the fp32 reference (output
and LSE), then timed three ways, flashcore and SDPA interleaved round by round, medians over
rounds:

- ``eager``: the issue's definition, triton.testing.do_bench(fn, warmup=25, rep=100,
  return_mode="median"): L2 cleared before every call, CUDA events around each call (an
  equivalent in this script when triton does not import; the JSON says which ran);
- ``graph``: per call of 100 back-to-back calls replayed from one CUDA graph (GPU time only);
- ``python``: per call of back-to-back calls from Python (what an eager loop sees).

Then the floor of each timing: a trivial kernel (torch.neg of 16 elements) timed eager and in
graphs exactly as the rows are. Then the host side on a tiny input (1, 1, 16, 64) fp16: per-call host time (perf_counter around
2000 calls and the final synchronize, best of 7) of torch.neg, x.view(-1), SDPA, attention() and
the raw op attention() ends in; and a cProfile of attention() (profiling inflates every Python
call, so read its numbers as shares, not as costs). Targets (issue 8): the seed shape
(1, 8, 512, 64) fp16 at <= 6 us eager and <= 4 us graph; every other row at <= 0.7x SDPA's time.

With ``--long-keys`` it also times tune.long_key_shapes() (short queries over long keys: where the
split-KV clusters pay), which have no issue-8 target.

    python benchmarks/bench_small.py [--rounds 3] [--dtype fp16 --dtype bf16] [--shape B,H,S,D ...]
                                     [--long-keys] [--json out.json] [--no-host] [--no-profile]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import statistics
import sys
from pathlib import Path

import torch

import flashcore_cutlass as fc
from flashcore_cutlass import api
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_per_call, time_graph, time_python_calls
from flashcore_cutlass.tune import TORCH_DTYPES, long_key_shapes, small_shapes

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import check_against_reference, environment, format_table, save  # noqa: E402

F = torch.nn.functional

# Issue 8's shapes (B, H, S, D): tune.small_shapes() without the dtype, one list for tuner and benchmark.
SHAPES = list(dict.fromkeys((p.batch, p.heads, p.seqlen_q, p.head_dim) for p in small_shapes()))
DTYPES = ("fp16", "bf16")
SEED = ("fp16", (1, 8, 512, 64))  # the seed's shape: absolute targets
EAGER_TARGET_US = 6.0
GRAPH_TARGET_US = 4.0
RATIO_TARGET = 0.7  # ours / SDPA time, every other row
# flashcore_nopdl: the same calls with programmatic dependent launch off (FLASHCORE_PDL=0), to
# show what PDL gives (graph and Python loops: a call's prologue overlaps the previous call's end).
IMPLS = ("flashcore", "flashcore_nopdl", "sdpa")
GRAPH_CALLS = 100
TINY = (1, 1, 16, 64)
HOST_CALLS, HOST_REPEATS = 2000, 7
PROFILE_CALLS, PROFILE_TOP = 20000, 12
L2_FLUSH_BYTES = 256 * 1024 * 1024  # what triton's do_bench zeroes before each call


# ---- pure helpers (tests/benchmarks/test_bench_small.py runs them on CPU) ----

def parse_shape(text: str) -> tuple[int, ...]:
    """"B,H,S,D" -> (B, H, S, D), or "B,H,Sq,Sk,D" -> (B, H, Sq, Sk, D): positive ints (argparse type)."""
    try:
        dims = tuple(int(x) for x in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) not in (4, 5) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"a shape is B,H,S,D or B,H,Sq,Sk,D (positive ints), got {text!r}")
    return dims


def problems(shapes, dtypes) -> list[Problem]:
    """Non-causal problems, dtype by dtype, each (shape, dtype) once; a 4-tuple has Sq = Sk."""
    out = []
    for dt in dict.fromkeys(dtypes):
        for shape in dict.fromkeys(shapes):
            b, h, sq, sk, d = shape if len(shape) == 5 else (*shape[:3], shape[2], shape[3])
            out.append(Problem(dt, d, False, b, h, sq, sk))
    return out


def shape_of(row: dict) -> tuple[int, int, int, int]:
    return row["batch"], row["heads"], row["seqlen_q"], row["head_dim"]


def bench_counts(estimate_ms: float, warmup_ms: float, rep_ms: float) -> tuple[int, int]:
    """do_bench's warm-up and timed call counts from one call's estimated time (flush included).
    A zero estimate (an event pair can read 0) would divide by zero in triton: 1000 calls each."""
    if estimate_ms <= 0:
        return 1000, 1000
    return max(1, int(warmup_ms / estimate_ms)), max(1, int(rep_ms / estimate_ms))


def eager_timer(import_module=importlib.import_module):
    """(do_bench, name): triton's when it imports, else do_bench_fallback (same method)."""
    try:
        return import_module("triton.testing").do_bench, "triton.testing.do_bench"
    except Exception as exc:  # not installed, or installed and broken: both mean "not importable"
        return do_bench_fallback, f"bench_small.do_bench_fallback (triton: {type(exc).__name__}: {exc})"


def ratio(ours: float, sdpa: float) -> float:
    """Time ratio ours / SDPA: below 1 = faster than SDPA."""
    return ours / sdpa


def verdict(row: dict) -> dict:
    """Issue 8's target of a row and whether it holds; a failed correctness check never meets one.
    Rows with Sq != Sk (--long-keys) have no target: met is None."""
    if row["seqlen_q"] != row["seqlen_k"]:
        return {"target": None, "eager": None, "graph": None, "check": row["check"]["ok"], "met": None}
    if (row["dtype"], shape_of(row)) == SEED:
        target = f"eager <= {EAGER_TARGET_US:g} us, graph <= {GRAPH_TARGET_US:g} us"
        eager = row["eager_us"]["flashcore"] <= EAGER_TARGET_US
        graph = row["graph_us"]["flashcore"] <= GRAPH_TARGET_US
    else:
        target = f"<= {RATIO_TARGET:g}x SDPA time, eager and graph"
        eager = row["ratio_eager"] <= RATIO_TARGET
        graph = row["ratio_graph"] <= RATIO_TARGET
    return {"target": target, "eager": eager, "graph": graph, "check": row["check"]["ok"],
            "met": row["check"]["ok"] and eager and graph}


def verdict_line(row: dict) -> str:
    v = row["verdict"]
    b, h, s, d = shape_of(row)
    text = "met" if v["met"] else "not met"
    if not v["check"]:
        text += " (correctness check FAILED)"
    elif not v["met"]:
        text += f" (eager {'ok' if v['eager'] else 'missed'}, graph {'ok' if v['graph'] else 'missed'})"
    return f"{row['dtype']} {b},{h},{s},{d}: {v['target']}: {text}"


TABLE_HEADERS = ["dtype", "B,H,S,D", "eager us ours/sdpa", "graph us ours/sdpa", "python us ours/sdpa",
                 "ratio eager", "ratio graph", "graph no-PDL", "variant", "check"]


def table_row(row: dict) -> list[str]:
    def pair(kind):
        return f"{row[kind]['flashcore']:.2f} / {row[kind]['sdpa']:.2f}"

    b, h, sq, d = shape_of(row)
    rows = str(sq) if sq == row["seqlen_k"] else f"{sq}/{row['seqlen_k']}"  # Sq/Sk when they differ
    return [row["dtype"], f"{b},{h},{rows},{d}", pair("eager_us"), pair("graph_us"), pair("python_us"),
            f"{row['ratio_eager']:.3f}", f"{row['ratio_graph']:.3f}",
            f"{row['graph_us']['flashcore_nopdl']:.2f} ({row['ratio_graph_nopdl']:.3f})", row["variant"].removeprefix("fc_"),
            "ok" if row["check"]["ok"] else "FAIL"]


def overhead_summary(us: dict) -> dict:
    """What the per-call host times say: our cost above the cheapest kernel launch torch has,
    above SDPA, and the Python of attention() above the raw op it ends in."""
    return {"flashcore_minus_trivial_op_us": us["attention"] - us["torch.neg"],
            "flashcore_minus_sdpa_us": us["attention"] - us["sdpa"],
            "attention_minus_raw_op_us": us["attention"] - us["raw op"],
            "raw_op_minus_trivial_op_us": us["raw op"] - us["torch.neg"]}


def top_functions(stats: dict, calls: int, top: int = PROFILE_TOP) -> list[dict]:
    """The ``top`` functions by own time of pstats.Stats(...).stats, per profiled call."""
    rows = []
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        label = name if file == "~" else f"{Path(file).name}:{line}({name})"  # "~": built-ins
        rows.append({"function": label, "tottime_us_per_call": tottime / calls * 1e6,
                     "cumtime_us_per_call": cumtime / calls * 1e6, "ncalls_per_call": ncalls / calls})
    return sorted(rows, key=lambda r: -r["tottime_us_per_call"])[:top]


# ---- GPU measurements ----

def do_bench_fallback(fn, warmup=25, rep=100, return_mode="median") -> float:
    """triton.testing.do_bench's method without triton: zero a 256 MB buffer (evicts L2) before
    each call, CUDA events around each call; milliseconds, median only."""
    assert return_mode == "median", "the fallback computes the median only"
    fn()
    torch.cuda.synchronize()
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    n_warmup, n_repeat = bench_counts(start.elapsed_time(end) / 5, warmup, rep)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
    for _ in range(n_warmup):
        fn()
    for s, e in zip(starts, ends):
        flush.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def check_problem(q, k, v) -> dict:
    """attention()'s output and LSE against the fp32 reference on every row (common.check_against_reference)."""
    return check_against_reference(q, k, v, rows_checked=None)


def bench_problem(p: Problem, rounds: int, do_bench) -> dict:
    q, k, v = random_qkv(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, TORCH_DTYPES[p.dtype])
    chosen = get_runtime().registry.choose(p)  # what attention() dispatches this shape to
    check = check_problem(q, k, v)
    if not check["ok"]:
        print(f"{p}: CORRECTNESS CHECK FAILED: {check}", file=sys.stderr)
    fns = {"flashcore": lambda: fc.attention(q, k, v), "flashcore_nopdl": without_pdl(lambda: fc.attention(q, k, v)),
           "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
    per = {kind: {name: [] for name in IMPLS} for kind in ("eager", "graph", "python")}
    for _ in range(rounds):  # interleaved: clock and thermal drift hit both implementations alike
        for name in IMPLS:
            fn = fns[name]
            per["eager"][name].append(do_bench(fn, warmup=25, rep=100, return_mode="median") * 1000.0)
            per["graph"][name].append(time_graph(fn, calls_per_graph=GRAPH_CALLS).median_us)
            per["python"][name].append(time_python_calls(fn).median_us)
    row = {"problem": str(p), "dtype": p.dtype, "batch": p.batch, "heads": p.heads, "seqlen_q": p.seqlen_q,
           "seqlen_k": p.seqlen_k, "head_dim": p.head_dim, "causal": p.causal, "variant": chosen.variant,
           "dispatch": chosen.reason, "check": check, "rounds_us": per}
    for kind, times in per.items():
        row[f"{kind}_us"] = {name: statistics.median(ts) for name, ts in times.items()}
        row[f"ratio_{kind}"] = ratio(row[f"{kind}_us"]["flashcore"], row[f"{kind}_us"]["sdpa"])
        row[f"ratio_{kind}_nopdl"] = ratio(row[f"{kind}_us"]["flashcore_nopdl"], row[f"{kind}_us"]["sdpa"])
    row["verdict"] = verdict(row)
    return row


def without_pdl(fn):
    """fn with the sm90 kernels launched without programmatic dependent launch (the setting is
    read at launch, so a graph captured from this keeps it). Costs the wrapper's two op calls of
    host time: read its python_us as an upper bound."""
    rt = get_runtime()

    def call():
        previous = rt.set_programmatic_launch(False)
        try:
            return fn()
        finally:
            rt.set_programmatic_launch(previous)

    return call


def tiny_inputs():
    b, h, s, d = TINY
    return random_qkv(b, h, s, s, d, torch.float16)


def _python_path(q, k, v, causal=False, scale=None, return_lse=False, window=None, softcap=None):
    """attention() without its hot path (the binding's dispatch cache): argument checks, the API's
    shape cache, the op; what every call cost before the hot path."""
    mask, return_lse, scale, window, softcap = api._checked_args(causal, return_lse, scale, window, softcap)
    out, lse = api._forward(q, k, v, mask, scale, window=window, softcap=softcap)
    return (out, lse) if return_lse else out


def host_overhead(calls: int = HOST_CALLS, repeats: int = HOST_REPEATS) -> dict:
    """Per-call host time of back-to-back calls on a tiny input: perf_counter around ``calls``
    calls and the final synchronize (the GPU work is far shorter than the host's), best of
    ``repeats``, the cases interleaved. Each case is a bound callable and its arguments, so the
    loop costs every case the same."""
    q, k, v = tiny_inputs()
    fc.attention(q, k, v)  # fills the dispatch cache: the variant the eager path launches
    vid = api._dispatch_cache[api._shape_key(q, k, v, False)]
    rt = get_runtime()
    # What api._forward calls for a non-causal call without window or softcap:
    # _fwd_dense(vid, q, k, v, scale, offset) with scale = D ** -0.5 and offset 0; and the same
    # call through the 15-argument op that windows, softcaps and packed sequences take; and the op
    # attention()'s hot path calls for a decided shape (the binding's dispatch cache).
    scale = q.shape[-1] ** -0.5
    cases = {"torch.neg": (torch.neg, (q,)), "x.view(-1)": (q.view, (-1,)),
             "sdpa": (F.scaled_dot_product_attention, (q, k, v)), "attention": (fc.attention, (q, k, v)),
             "raw op": (rt.fwd_dense, (vid, q, k, v, scale, 0)),
             "hot-path op (fwd_cached)": (rt.fwd_cached, (q, k, v, 0, None, True)),
             "attention, Python path": (_python_path, (q, k, v)),
             "raw op (fwd, 16 arguments)": (rt.fwd, (vid, q, k, v, scale, None, None, 0))}
    # A model's call under patch_sdpa (torch.nn.functional.scaled_dot_product_attention patched):
    # for a shape served before, the binding's dispatch cache without the patch's support checks.
    with fc.patch_sdpa():
        cases["SDPA under patch_sdpa"] = (F.scaled_dot_product_attention, (q, k, v))
        best = host_us_per_call(cases, calls, repeats)
    variant = next(name for name, i in rt.ids.items() if i == vid)
    return {"input": list(TINY), "dtype": "fp16", "calls": calls, "repeats": repeats, "variant": variant,
            "us": best, **overhead_summary(best)}


def timing_floors(rounds: int, do_bench) -> dict:
    """What the eager and graph timings give a trivial kernel (torch.neg of 16 elements), in the
    same rounds' method: the floor under any row of the table (launch, events, the L2 flush's
    aftermath), against which the seed's absolute targets read."""
    x = torch.randn(16, device="cuda")
    fn = lambda: torch.neg(x)  # noqa: E731
    eager = [do_bench(fn, warmup=25, rep=100, return_mode="median") * 1000.0 for _ in range(rounds)]
    graph = [time_graph(fn, calls_per_graph=GRAPH_CALLS).median_us for _ in range(rounds)]
    return {"op": "torch.neg(16 elements)", "eager_us": statistics.median(eager), "graph_us": statistics.median(graph)}


def profile_attention(calls: int = PROFILE_CALLS) -> list[dict]:
    q, k, v = tiny_inputs()
    for _ in range(100):
        fc.attention(q, k, v)
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fc.attention(q, k, v)
    prof.disable()
    torch.cuda.synchronize()
    return top_functions(pstats.Stats(prof).stats, calls)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them (default 3)")
    ap.add_argument("--dtype", action="extend", nargs="+", choices=DTYPES, help="default: fp16 and bf16")
    ap.add_argument("--shape", action="extend", nargs="+", type=parse_shape, metavar="B,H,S,D|B,H,Sq,Sk,D",
                    help="default: issue 8's six shapes")
    ap.add_argument("--long-keys", action="store_true",
                    help="also time tune.long_key_shapes() (short queries over long keys; no issue-8 target)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-host", action="store_true", help="skip the host-overhead figures")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile of attention()")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    do_bench, timer_name = eager_timer()
    rows = []
    todo = problems(args.shape or SHAPES, args.dtype or DTYPES)
    if args.long_keys:
        todo += [p for p in long_key_shapes() if p.dtype in (args.dtype or DTYPES)]
    for p in todo:
        rows.append(bench_problem(p, args.rounds, do_bench))
        r = rows[-1]
        print(f"{p}: eager {r['eager_us']['flashcore']:.2f} / {r['eager_us']['sdpa']:.2f} us, graph "
              f"{r['graph_us']['flashcore']:.2f} / {r['graph_us']['sdpa']:.2f} us (ours / sdpa)", file=sys.stderr)
    floors = None if args.no_host else timing_floors(args.rounds, do_bench)
    host = None if args.no_host else host_overhead()
    profile = None if args.no_profile else profile_attention()

    payload = {"environment": environment(), "eager_timer": timer_name, "rounds": args.rounds, "small": rows,
               "timing_floors": floors, "host_overhead": host, "profile": profile}
    path = save("bench_small", payload, args.json)

    if profile:
        print(f"cProfile of attention() on {TINY} fp16, {PROFILE_CALLS} calls, top {PROFILE_TOP} by own time "
              "(us per attention() call, profiler overhead included):")
        for f in profile:
            print(f"  {f['tottime_us_per_call']:7.3f}  {f['function']}")
    print(f"eager: {timer_name}; graph: per call of {GRAPH_CALLS} calls in one CUDA graph; medians of "
          f"{args.rounds} rounds; ratio = ours / sdpa time (< 1: faster)")
    print(format_table(TABLE_HEADERS, [table_row(r) for r in rows]))
    if floors:
        print(f"timing floors ({floors['op']}): eager {floors['eager_us']:.2f} us, graph {floors['graph_us']:.2f} us "
              "per call")
    if host:
        print(f"host time per call, {tuple(host['input'])} fp16, best of {host['repeats']} x {host['calls']} calls:")
        for name, us in host["us"].items():
            print(f"  {name:12s} {us:6.2f} us")
        print(f"  attention - torch.neg: {host['flashcore_minus_trivial_op_us']:+.2f} us; attention - raw op: "
              f"{host['attention_minus_raw_op_us']:+.2f} us; attention - sdpa: {host['flashcore_minus_sdpa_us']:+.2f} us")
    print("issue 8 targets:")
    for r in rows:
        if r["verdict"]["target"] is not None:
            print(f"  {verdict_line(r)}")
    print(f"results: {path}")
    failed = [r["problem"] for r in rows if not r["check"]["ok"]]
    if failed:
        print(f"correctness check FAILED for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
