"""What the open ratio targets of issues 8 and 9 ask of a kernel, against what the card gives at the
same sequence length and head dim, measured in one run (interleaved rounds):

- Issue 8, every small shape but the seed's at <= 0.7x SDPA's time (here: in CUDA graphs, per call of
  100 calls in one graph). The kernel's budget is 0.7 x SDPA's per-call time minus the graph floor (a
  trivial kernel's per-call time in the same graphs); the rate the budget needs is the shape's FLOPs
  over it. That rate is set against the best rate ours or SDPA reach at the same S, D and dtype with
  the card full (the FA3 grid's batch: B*S = 16k tokens, H*D = 2048; events, one call at a time).
- Issue 8, the seed's (1, 8, 512, 64) fp16 at <= 4 us in graphs and <= 6 us eager (L2 flushed, as
  bench_small): the budgets over the floors, against the least work an attention call can do (one
  64-row query tile over 64 keys, one head) run by every built variant that takes it, and by SDPA.
- Issue 9, Mistral's window (GQA 32/8, D128, S = 8192, a 4096-key left window, causal) at <= 0.6x
  the time of SDPA's full causal call: the rate on the window's visible (query, key) pairs that needs,
  against ours and SDPA's unmasked rate on the same inputs (no mask: no masked tile, no skipped tile).

A ratio above 1 in "needs" says the target asks for a rate above the best measured at that S and D.

    python benchmarks/target_bounds.py [--rounds 3] [--warmup-ms 100] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph, time_rounds
from flashcore_cutlass.tune import MODEL_PREFILL, TORCH_DTYPES, small_shapes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import visible_pairs  # noqa: E402
from bench_small import (EAGER_TARGET_US, GRAPH_CALLS, GRAPH_TARGET_US, RATIO_TARGET, SEED, eager_timer,  # noqa: E402
                         timing_floors)
from common import add_warmup_argument, environment, format_table, save  # noqa: E402

F = torch.nn.functional
MISTRAL = "mistral-7b-window"
MISTRAL_TARGET = 0.6  # issue 9: the window's time / SDPA's full causal time
GRID_TOKENS, GRID_WIDTH = 16384, 2048  # the FA3 grid: B*S tokens, H*D
ONE_TILE = (1, 1, 64, 64)  # (B, H, S, D): one 64-row query tile over 64 keys


# ---- pure helpers (tests/benchmarks/test_target_bounds.py runs them on CPU) ----

def attention_flops(batch: int, heads: int, pairs: int, head_dim: int, head_dim_v: int | None = None) -> float:
    """FLOPs of the two GEMMs over ``pairs`` visible (query, key) pairs of each head."""
    return 2.0 * batch * heads * pairs * (head_dim + (head_dim_v or head_dim))


def needed_tflops(flops: float, target_us: float, floor_us: float = 0.0) -> float:
    """TFLOP/s a kernel needs to do ``flops`` within ``target_us`` minus the ``floor_us`` that a trivial
    call costs by the same timing; inf where the floor leaves no time."""
    budget = target_us - floor_us
    return flops / (budget * 1e6) if budget > 0 else math.inf


def tflops(flops: float, us: float) -> float:
    return flops / (us * 1e6)


def full_card_shape(seqlen: int, head_dim: int) -> tuple[int, int]:
    """(B, H) of the FA3 grid at this S and D: B*S = 16k tokens, H*D = 2048 (at least one each)."""
    return max(1, GRID_TOKENS // seqlen), max(1, GRID_WIDTH // head_dim)


def ratio_target_shapes() -> list[tuple[str, tuple[int, int, int, int]]]:
    """Issue 8's rows with a ratio target (every small shape but the seed's), in both dtypes."""
    return [(p.dtype, (p.batch, p.heads, p.seqlen_q, p.head_dim)) for p in small_shapes()
            if (p.dtype, (p.batch, p.heads, p.seqlen_q, p.head_dim)) != SEED]


# ---- GPU measurements ----

def medians(per: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in per.items()}


def graph_rounds(fns: dict, rounds: int) -> dict[str, float]:
    per = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            per[name].append(time_graph(fn, calls_per_graph=GRAPH_CALLS).median_us)
    return medians(per)


def bound_ratio_row(dtype: str, shape, floor_graph_us: float, rounds: int, warmup_ms: float) -> dict:
    b, h, s, d = shape
    q, k, v = random_qkv(b, h, s, s, d, TORCH_DTYPES[dtype])
    graph = graph_rounds({"flashcore": lambda: fc.attention(q, k, v),
                          "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}, rounds)
    flops = attention_flops(b, h, s * s, d)
    fb, fh = full_card_shape(s, d)
    fq, fk, fv = random_qkv(fb, fh, s, s, d, TORCH_DTYPES[dtype])
    full = medians(time_rounds({"flashcore": lambda: fc.attention(fq, fk, fv),
                                "sdpa": lambda: F.scaled_dot_product_attention(fq, fk, fv)},
                               rounds, reps=30, warmup_ms=warmup_ms))
    full_flops = attention_flops(fb, fh, s * s, d)
    best_full = max(tflops(full_flops, us) for us in full.values())
    need = needed_tflops(flops, RATIO_TARGET * graph["sdpa"], floor_graph_us)
    return {"dtype": dtype, "shape": list(shape), "graph_us": graph, "ratio_graph": graph["flashcore"] / graph["sdpa"],
            "target_us": RATIO_TARGET * graph["sdpa"], "needed_tflops": need,
            "full_card_shape": [fb, fh, s, d], "full_card_us": full,
            "full_card_tflops": {n: tflops(full_flops, us) for n, us in full.items()},
            "needs_x_best_full_card_rate": need / best_full}


def bound_seed(floors: dict, rounds: int, do_bench) -> dict:
    dtype, (b, h, s, d) = SEED
    q, k, v = random_qkv(b, h, s, s, d, TORCH_DTYPES[dtype])
    seed_graph = graph_rounds({"flashcore": lambda: fc.attention(q, k, v),
                               "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}, rounds)
    ob, oh, os_, od = ONE_TILE
    tq, tk, tv = random_qkv(ob, oh, os_, os_, od, TORCH_DTYPES[dtype])
    rt = get_runtime()
    scale = od ** -0.5
    fns = {name: (lambda name=name: rt.run(name, tq, tk, tv, scale))
           for name in rt.registry.candidates(Problem(dtype, od, False, ob, oh, os_, os_))}
    fns["sdpa"] = lambda: F.scaled_dot_product_attention(tq, tk, tv)
    one_graph = graph_rounds(fns, rounds)
    fastest = min((n for n in one_graph if n != "sdpa"), key=one_graph.get)
    one_eager = {n: statistics.median(do_bench(fns[n], warmup=25, rep=100, return_mode="median") * 1000.0
                                      for _ in range(rounds)) for n in (fastest, "sdpa")}
    return {"seed": {"dtype": dtype, "shape": [b, h, s, d], "graph_us": seed_graph},
            "floors": floors,
            "budget_over_floor_us": {"graph": GRAPH_TARGET_US - floors["graph_us"],
                                     "eager": EAGER_TARGET_US - floors["eager_us"]},
            "one_tile": {"dtype": dtype, "shape": list(ONE_TILE), "graph_us": one_graph, "fastest_variant": fastest,
                         "eager_us": one_eager}}


def bound_mistral(rounds: int, warmup_ms: float) -> dict:
    b, hq, hkv, s, d, window, _softcap, _dv = MODEL_PREFILL[MISTRAL]
    q, k, v = random_qkv(b, hq, s, s, d, torch.bfloat16, heads_k=hkv)
    fns = {"flashcore window": lambda: fc.attention(q, k, v, causal=True, window=window),
           "sdpa full causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
           "flashcore unmasked": lambda: fc.attention(q, k, v),
           "sdpa unmasked": lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)}
    us = medians(time_rounds(fns, rounds, reps=20, warmup_ms=warmup_ms))
    window_flops = attention_flops(b, hq, visible_pairs(s, window), d)
    dense_flops = attention_flops(b, hq, s * s, d)
    need = needed_tflops(window_flops, MISTRAL_TARGET * us["sdpa full causal"])
    unmasked = {n: tflops(dense_flops, us[n]) for n in ("flashcore unmasked", "sdpa unmasked")}
    return {"case": MISTRAL, "shape": [b, hq, hkv, s, d], "window": list(window), "us": us,
            "window_vs_sdpa_full_causal": us["flashcore window"] / us["sdpa full causal"],
            "window_pairs_share_of_causal": visible_pairs(s, window) / visible_pairs(s, None),
            "window_tflops": tflops(window_flops, us["flashcore window"]),
            "needed_tflops": need, "unmasked_tflops": unmasked,
            "needs_x_best_unmasked_rate": need / max(unmasked.values())}


def report(result: dict) -> str:
    rows = [[r["dtype"], ",".join(map(str, r["shape"])), f"{r['graph_us']['flashcore']:.2f} / {r['graph_us']['sdpa']:.2f}",
             f"{r['ratio_graph']:.3f}", f"{r['needed_tflops']:.0f}",
             f"{r['full_card_tflops']['flashcore']:.0f} / {r['full_card_tflops']['sdpa']:.0f}",
             f"{r['needs_x_best_full_card_rate']:.2f}x"] for r in result["ratio_rows"]]
    lines = [f"Issue 8, rows with a ratio target, <= {RATIO_TARGET}x SDPA's time in graphs (floor "
             f"{result['seed']['floors']['graph_us']:.2f} us):",
             format_table(["dtype", "B,H,S,D", "graph us ours / sdpa", "ratio", "needs TFLOP/s",
                           "full card TFLOP/s ours / sdpa", "needs x best"], rows)]
    sd = result["seed"]
    one = sd["one_tile"]
    lines.append(f"Issue 8, seed {sd['seed']['shape']} {sd['seed']['dtype']}: graph {sd['seed']['graph_us']['flashcore']:.2f} / "
                 f"SDPA {sd['seed']['graph_us']['sdpa']:.2f} us; floors eager {sd['floors']['eager_us']:.2f}, graph "
                 f"{sd['floors']['graph_us']:.2f} us; budget over the floor: graph {sd['budget_over_floor_us']['graph']:.2f}, "
                 f"eager {sd['budget_over_floor_us']['eager']:.2f} us")
    lines.append(f"  one tile {one['shape']}: fastest variant {one['fastest_variant'].removeprefix('fc_')} graph "
                 f"{one['graph_us'][one['fastest_variant']]:.2f} / eager {one['eager_us'][one['fastest_variant']]:.2f} us; "
                 f"SDPA graph {one['graph_us']['sdpa']:.2f} / eager {one['eager_us']['sdpa']:.2f} us")
    m = result["mistral"]
    lines.append(f"Issue 9, {m['case']}: window {m['us']['flashcore window']:.1f} us = {m['window_vs_sdpa_full_causal']:.3f}x "
                 f"SDPA's full causal {m['us']['sdpa full causal']:.1f} us (target {MISTRAL_TARGET}); the window keeps "
                 f"{m['window_pairs_share_of_causal']:.3f} of causal's pairs; window rate {m['window_tflops']:.0f} TFLOP/s, "
                 f"needs {m['needed_tflops']:.0f}; unmasked rate ours {m['unmasked_tflops']['flashcore unmasked']:.0f} / "
                 f"SDPA {m['unmasked_tflops']['sdpa unmasked']:.0f}: needs {m['needs_x_best_unmasked_rate']:.2f}x the best")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them (default 3)")
    add_warmup_argument(ap)
    ap.add_argument("--json", help="where to write the results (default: benchmarks/results/)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("target_bounds.py needs a CUDA GPU", file=sys.stderr)
        return 2
    do_bench, timer = eager_timer()
    floors = timing_floors(args.rounds, do_bench)
    result = {"environment": environment(), "rounds": args.rounds, "warmup_ms": args.warmup_ms, "eager_timer": timer,
              "ratio_rows": [bound_ratio_row(dt, shape, floors["graph_us"], args.rounds, args.warmup_ms)
                               for dt, shape in ratio_target_shapes()],
              "seed": bound_seed(floors, args.rounds, do_bench),
              "mistral": bound_mistral(args.rounds, args.warmup_ms)}
    path = save("target_bounds", result, args.json)
    print(report(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
