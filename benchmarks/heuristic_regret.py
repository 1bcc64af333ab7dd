"""How far the untuned heuristic's pick is from the fastest measured candidate, per tuned shape.

A tuning run times every built candidate of each problem. For each (problem key, shape) of the
tuning-table JSON given (`flashcore table --json`, or the tuning_table-*.json files under
benchmarks/results), this ranks the candidates measured there as dispatch would without a table
(registry.heuristic_rank, on the key's bucketed sizes) and compares its pick's time with the
fastest's: the *regret*, 0 where the heuristic picks the winner. It needs no GPU.

    python benchmarks/heuristic_regret.py TABLE.json [TABLE.json ...] [--min-candidates 4]
        [--sm-count 132] [--only-split] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from flashcore_codegen import config_from_name
from flashcore_cutlass.problem import Problem, ProblemKey
from flashcore_cutlass.registry import DEFAULT_SM_COUNT, heuristic_rank, preferred_splits

SHAPE_FIELDS = ("B", "H", "Sq", "Sk")


# ---- pure helpers (tests/benchmarks/test_heuristic_regret.py runs them on CPU) ----

def parse_shape(text: str) -> tuple[int, int, int, int]:
    """"B1 H8 Sq4 Sk32768" -> (1, 8, 4, 32768)."""
    parts = text.split()
    if len(parts) != 4 or any(not p.startswith(f) for p, f in zip(parts, SHAPE_FIELDS)):
        raise ValueError(f"malformed shape {text!r}")
    return tuple(int(p[len(f):]) for p, f in zip(parts, SHAPE_FIELDS))


def problem_of(key_text: str, shape_text: str) -> Problem:
    """The problem a tuning row measured: its key's dtype, head dims and mask, its shape's sizes
    (a window as the key's bucketed span, which is all the heuristic reads)."""
    key = ProblemKey.parse(key_text)
    b, h, sq, sk = parse_shape(shape_text)
    return Problem(key.dtype, key.head_dim, key.causal, b, h, sq, sk, head_dim_v=key.head_dim_v,
                   bottom_right=key.bottom_right, window=None if key.window is None else (key.window - 1, 0),
                   softcap=1.0 if key.softcap else 0.0, group=key.group)


def candidate_sets(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(problem key, shape) -> {variant: median us}: every measured candidate of each tuned shape."""
    sets: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        sets.setdefault((r["problem_key"], r["shape"]), {})[r["variant"]] = float(r["median_us"])
    return sets


def regret(key_text: str, shape_text: str, times: dict[str, float], sm_count: int = DEFAULT_SM_COUNT) -> dict:
    """The heuristic's pick among ``times``' variants for the row's problem, and how much longer it
    took than the fastest (0.0: the same variant)."""
    problem = problem_of(key_text, shape_text)
    pick = min(times, key=lambda name: heuristic_rank(config_from_name(name), problem, sm_count))
    best = min(times, key=times.get)
    return {"problem_key": key_text, "shape": shape_text, "candidates": len(times),
            "splits": preferred_splits(problem.key, sm_count), "best": best, "best_us": times[best],
            "pick": pick, "pick_us": times[pick], "regret": times[pick] / times[best] - 1.0}


def summary(results: list[dict]) -> dict:
    regrets = [r["regret"] for r in results]
    return {"sets": len(results), "picked_the_fastest": sum(r == 0.0 for r in regrets),
            "mean_regret": statistics.fmean(regrets) if regrets else 0.0,
            "max_regret": max(regrets, default=0.0)}


def load_rows(paths: list[str]) -> list[dict]:
    """Rows of tuning-table JSON files (a list of rows, or an object with ``rows``); rows of the
    shipped table (``source`` shipped: winners only) are left out."""
    rows = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        data = data if isinstance(data, list) else data.get("rows", [])
        rows += [r for r in data if r.get("source") != "shipped"]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+", help="tuning-table JSON files")
    ap.add_argument("--min-candidates", type=int, default=4, help="skip shapes with fewer measured candidates")
    ap.add_argument("--sm-count", type=int, default=DEFAULT_SM_COUNT)
    ap.add_argument("--only-split", action="store_true", help="only shapes where the heuristic prefers split-KV")
    ap.add_argument("--json", help="write the rows and the summary here")
    args = ap.parse_args(argv)
    results = []
    for (key, shape), times in sorted(candidate_sets(load_rows(args.tables)).items()):
        if len(times) < args.min_candidates:
            continue
        try:
            r = regret(key, shape, times, args.sm_count)
        except ValueError as exc:  # a key or variant this checkout does not know
            print(f"skipped {key} {shape}: {exc}", file=sys.stderr)
            continue
        if args.only_split and r["splits"] == 1:
            continue
        results.append(r)
        mark = "" if r["regret"] == 0.0 else f"  {r['pick']} {r['pick_us']:.1f} us"
        print(f"{key:36s} {shape:26s} {r['best']} {r['best_us']:.1f} us  regret {100 * r['regret']:5.1f} %{mark}")
    s = summary(results)
    print(f"{s['sets']} shapes: the heuristic picked the fastest at {s['picked_the_fastest']}, "
          f"mean regret {100 * s['mean_regret']:.1f} %, max {100 * s['max_regret']:.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": s, "rows": results, "tables": args.tables, "sm_count": args.sm_count}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
