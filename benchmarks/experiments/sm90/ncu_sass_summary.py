"""Summarise Nsight Compute source pages as SASS (`ncu -i R.ncu-rep --csv --page source --print-source sass > F`, CSV),
one kernel per file: warp instructions executed by opcode, warp-stall samples by reason and by the opcode they stall
on, and (--listing OUT) the whole SASS with each instruction's executions and samples, for reading a kernel's loop
beside another's (e.g. cuDNN's, whose SASS only the profile shows; profile_sass_vs_cudnn.sh).

    python benchmarks/experiments/sm90/ncu_sass_summary.py F [F ...] [--listing DIR]   (F: e.g. TAG.sass)
"""
from __future__ import annotations

import argparse
import collections
import csv
import os
import re

REASONS = ("wait", "long_sb", "barrier", "mio", "math", "short_sb", "branch_resolving", "dispatch", "selected",
           "not_selected", "no_inst", "membar", "misc", "sleep", "lg")


def load(path: str) -> list[dict]:
    rows = list(csv.reader(open(path)))
    header = rows[1]  # rows[0] names the kernel
    out = []
    for r in rows[2:]:
        d = dict(zip(header, r))
        if not d.get("Instructions Executed", "").isdigit():
            continue
        source = d["Source"].strip()
        op = re.sub(r"^@!?U?P\w+\s+", "", source).split()
        d["opcode"] = op[0].split(".")[0] if op else ""
        d["source"] = source
        out.append(d)
    return out


def summary(path: str, top: int = 12) -> str:
    ins = load(path)
    executed = collections.Counter()
    for d in ins:
        executed[d["opcode"]] += int(d["Instructions Executed"])
    total = sum(executed.values())
    stalls = collections.defaultdict(collections.Counter)
    for d in ins:
        for reason in REASONS:
            stalls[reason][d["opcode"]] += int(d.get(f"stall_{reason}") or 0)
    samples = sum(sum(c.values()) for c in stalls.values())
    lines = [f"== {os.path.basename(path)}: {total / 1e6:.2f} M warp instructions, {samples} stall samples",
             "   executed: " + ", ".join(f"{op} {100 * n / total:.1f}%" for op, n in executed.most_common(top))]
    for reason, by_op in sorted(stalls.items(), key=lambda kv: -sum(kv[1].values()))[:8]:
        n = sum(by_op.values())
        lines.append(f"   {reason:16s} {100 * n / max(samples, 1):5.1f}%  "
                     + ", ".join(f"{op} {100 * c / max(samples, 1):.1f}" for op, c in by_op.most_common(5)))
    return "\n".join(lines)


def listing(path: str, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, os.path.basename(path) + ".txt")
    with open(target, "w") as f:
        for i, d in enumerate(load(path)):
            f.write(f"{i:5d} {d['Address'][-5:]} {int(d['Instructions Executed']):9d} "
                    f"{int(d['Warp Stall Sampling (All Samples)'] or 0):5d}  {d['source']}\n")
    return target


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--listing", help="a directory: write each file's SASS listing there")
    args = ap.parse_args()
    for path in args.files:
        print(summary(path))
        if args.listing:
            print(f"   listing: {listing(path, args.listing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
