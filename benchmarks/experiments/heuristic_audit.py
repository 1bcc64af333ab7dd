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

A key whose run did not time the ranking's first choice (older runs timed older variant sets) is
listed with the first variant it did time but left out of the mean: that variant may be far down
the ranking (before 2026-11-28 the mean counted them: 1.207x over 128 keys on the H100 then, 1.016x
over its 91 rated keys). With ``--gpu NAME`` only runs on that GPU count;
``--borrow-from FILE`` (a shipped table of another GPU, e.g. benchmarks/results/tuned_h100-retired-after-03c7285.json)
also rates what dispatch borrows where a GPU has no row of its own (shipped.ShippedTable.borrowed):
that file's winner of each key against the heuristic's first choice, over the keys whose run timed both.
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
from flashcore_cutlass.shipped import load
from flashcore_cutlass.tune import problem_of_row

RESULTS = Path(__file__).resolve().parents[1] / "results"


def measured_keys(min_variants: int = 3, gpu: str | None = None) -> dict:
    """(problem_key, shape) -> {variant: median us} of the latest run that timed >= min_variants
    (on ``gpu`` only, when given)."""
    latest = {}
    for path in sorted(glob.glob(str(RESULTS / "tuning_table-*.json"))):
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        rows = rows if isinstance(rows, list) else rows.get("rows", [])
        per = defaultdict(dict)
        for r in rows:
            if (isinstance(r, dict) and r.get("source") != "shipped" and not r.get("stale")
                    and gpu in (None, r.get("gpu_name"))):
                per[(r["problem_key"], r.get("shape"))][r["variant"]] = r["median_us"]
        latest.update({k: v for k, v in per.items() if len(v) >= min_variants})
    return latest


def geo_mean(ratios) -> float:
    ratios = list(ratios)
    return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worse", type=float, default=1.1, help="list keys whose pick took this many times the best")
    ap.add_argument("--glitch", type=float, default=10.0,
                    help="leave ratios above this out of the mean (a timing glitch, e.g. NOTES 2026-11-27 10:25-)")
    ap.add_argument("--gpu", help="only tuning runs on this GPU (its name as torch reports it)")
    ap.add_argument("--borrow-from", type=Path, help="a shipped table of another GPU: rate its winners too")
    args = ap.parse_args()
    measured = measured_keys(gpu=args.gpu)
    lent = {(r.problem_key, r.shape): r.variant for r in load(args.borrow_from).rows} if args.borrow_from else {}
    registry = Registry({c.name: "audit" for c in default_configs()})
    ratios, listed, paired, untimed = [], [], [], 0
    for (key, shape), times in sorted(measured.items()):
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
        best = min(times.values())
        ratio = times[pick] / best
        if ratio <= args.glitch and ranked[0] in times:
            ratios.append(ratio)
        untimed += ranked[0] not in times
        if ratio > args.worse or ranked[0] not in times:
            listed.append((ratio, key, shape, pick, min(times, key=times.get), ranked[0] in times))
        # The pair only where the run timed both first choices: the heuristic's and the lender's.
        if ranked[0] in times and lent.get((key, shape)) in times:
            paired.append((ratio, times[lent[key, shape]] / best))
    print(f"{len(ratios)} keys; the heuristic's pick took {geo_mean(ratios):.3f}x the fastest time (geometric mean; "
          f"{untimed} keys whose run did not time its first choice left out)")
    if args.borrow_from:
        heuristic, borrowed = zip(*paired) if paired else ((), ())
        print(f"{len(paired)} keys where the run timed the first choice of both: {args.borrow_from.name}'s winners took "
              f"{geo_mean(borrowed):.3f}x the fastest time (at worst {max(borrowed, default=float('nan')):.2f}x, "
              f"{sum(r > 1.05 for r in borrowed)} keys > 1.05x), the heuristic's first choice {geo_mean(heuristic):.3f}x "
              f"(at worst {max(heuristic, default=float('nan')):.2f}x, {sum(r > 1.05 for r in heuristic)} keys > 1.05x)")
    for ratio, key, shape, pick, best, first in sorted(listed, reverse=True):
        note = "" if first else " (its first choice was not timed)"
        print(f"  {ratio:6.2f}x {key} [{shape}]: {pick} against {best}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
