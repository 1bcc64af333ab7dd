"""Print a `flashcore table --json` dump per problem key: each variant's median, fastest first,
the variant named by its tiles only (what follows fc_<family>_<dtype>_d<D>_<mask>_).

    python benchmarks/experiments/sm90/table_by_key.py TABLE.json [--prefix bf16_d] [--top N]
"""

from __future__ import annotations

import argparse
import collections
import json


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--prefix", default="", help="only problem keys starting with this")
    ap.add_argument("--top", type=int, default=0, help="the fastest N per key (0: all)")
    args = ap.parse_args()
    by = collections.defaultdict(list)
    for r in json.load(open(args.table)):
        if r["problem_key"].startswith(args.prefix):
            by[r["problem_key"]].append((round(r["median_us"], 1), r["variant"].split("_", 5)[5]))
    for key in sorted(by):
        ranked = sorted(by[key])
        print(key, ranked[: args.top] if args.top else ranked)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
