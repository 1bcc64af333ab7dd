"""How good is the dispatch heuristic where we have measurements? (CPU only.)

For every key that a tuning run in benchmarks/results timed with at least 3 default variants
(`tuning_table-*.json`; the latest run per key and reference shape), ask the registry's heuristic
(no tuning table, no shipped table: what an untuned shape gets) which default variant it would
run, take the first of its ranking that the run timed, and compare its time with the fastest the
run timed. Prints the geometric mean of pick / best and the keys where the pick was more than
--worse slower (or where the heuristic's first choice was not timed). Keys with a window, a
bottom-right offset, a V head dim of their own or packed GQA rows are skipped (their problems
cannot be rebuilt from the key's shape string alone).

    FLASHCORE_SHIPPED_TABLE=off python benchmarks/experiments/heuristic_audit.py [--worse 1.1] [--glitch 10]
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from collections import defaultdict
from pathlib import Path

from flashcore_codegen.space import default_configs
from flashcore_cutlass.problem import ProblemKey
from flashcore_cutlass.registry import Registry
from flashcore_cutlass.tune import problem_of_row

RESULTS = Path(__file__).resolve().parents[1] / "results"


def measured_keys(min_variants: int = 3) -> dict:
    """(problem_key, shape) -> {variant: median us} of the latest run that timed >= min_variants."""
    latest = {}
    for path in sorted(glob.glob(str(RESULTS / "tuning_table-*.json"))):
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        rows = rows if isinstance(rows, list) else rows.get("rows", [])
        per = defaultdict(dict)
        for r in rows:
            if isinstance(r, dict) and r.get("source") != "shipped" and not r.get("stale"):
                per[(r["problem_key"], r.get("shape"))][r["variant"]] = r["median_us"]
        latest.update({k: v for k, v in per.items() if len(v) >= min_variants})
    return latest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worse", type=float, default=1.1, help="list keys whose pick took this many times the best")
    ap.add_argument("--glitch", type=float, default=10.0,
                    help="leave ratios above this out of the mean (a timing glitch, e.g. NOTES 2026-11-27 10:25-)")
    args = ap.parse_args()
    registry = Registry({c.name: "audit" for c in default_configs()})
    ratios, listed = [], []
    for (key, shape), times in sorted(measured_keys().items()):
        if ProblemKey.parse(key).head_dim_v:
            continue
        try:
            problem = problem_of_row(key, shape or "")
        except ValueError:  # mask parameters the key does not record, or no shape
            continue
        ranked = registry.candidates(problem)
        pick = next((v for v in ranked if v in times), None)
        if pick is None:
            continue
        ratio = times[pick] / min(times.values())
        if ratio <= args.glitch:
            ratios.append(ratio)
        if ratio > args.worse or ranked[0] not in times:
            listed.append((ratio, key, shape, pick, min(times, key=times.get), ranked[0] in times))
    mean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    print(f"{len(ratios)} keys; the heuristic's pick took {mean:.3f}x the fastest time (geometric mean)")
    for ratio, key, shape, pick, best, first in sorted(listed, reverse=True):
        note = "" if first else " (its first choice was not timed)"
        print(f"  {ratio:6.2f}x {key} [{shape}]: {pick} against {best}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
