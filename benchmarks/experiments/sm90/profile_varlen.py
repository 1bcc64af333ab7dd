"""Run one of bench_models.py's packed-sequence calls (varlen_impls) a few times, for Nsight
Compute's kernel times:

    ncu -k regex:kernel_entry --launch-skip 2 --launch-count 1 \\
        python benchmarks/experiments/sm90/profile_varlen.py --impl batched|batched_same_layout|varlen
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench_models import varlen_impls  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["batched", "batched_same_layout", "varlen"])
    args = ap.parse_args()
    fn = varlen_impls()[args.impl]
    for _ in range(4):
        fn()
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
