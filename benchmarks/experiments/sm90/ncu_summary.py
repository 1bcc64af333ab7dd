"""Summarise Nsight Compute raw CSVs (`ncu --csv --page raw ... > DIR/TAG.csv`), one kernel per file:
the named metrics, the six largest warp-stall reasons and the tensor-pipe utilisation.

    python benchmarks/experiments/sm90/ncu_summary.py DIR METRIC [METRIC ...]
"""
import csv
import glob
import os
import sys

STALL_PREFIX, STALL_SUFFIX = "smsp__average_warps_issue_stalled_", "_per_issue_active.ratio"


def summary(path: str, metrics: list[str]) -> str:
    rows = list(csv.reader(open(path)))
    header = next((i for i, r in enumerate(rows) if "ID" in r), None)
    if header is None:
        return f"== {os.path.basename(path)[:-4]}: no data"
    d = dict(zip(rows[header], rows[header + 2]))
    stalls = sorted(((float(v.replace(",", "")), k) for k, v in d.items()
                     if k.startswith(STALL_PREFIX) and k.endswith(STALL_SUFFIX)
                     and v.replace(",", "").replace(".", "").isdigit()), reverse=True)[:6]
    tensor = [(k, v) for k, v in d.items() if "pipe_tensor" in k and k.endswith("pct_of_peak_sustained_active")][:2]
    lines = [f"== {os.path.basename(path)[:-4]}", *(f"   {k}: {d.get(k)}" for k in metrics),
             f"   stalls: {[(k[len(STALL_PREFIX):-len(STALL_SUFFIX)], v) for v, k in stalls]}"]
    if tensor:
        lines.append(f"   tensor pipe: {tensor}")
    return "\n".join(lines)


if __name__ == "__main__":
    for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
        print(summary(f, sys.argv[2:]))
