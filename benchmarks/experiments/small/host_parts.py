"""Host time per call of each built fp16 D64 non-causal variant's raw op on a tiny input, next to
torch.neg and the two allocations every call makes: which part of a call's host time is the
family's launch path (sm90: TMA descriptors, cluster launch) and which is common to all.

    python benchmarks/experiments/small/host_parts.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json

import torch

from flashcore_codegen import config_from_name
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_per_call

CALLS, REPEATS = 2000, 7


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    q = torch.randn(1, 1, 16, 64, device="cuda", dtype=torch.float16)
    rt = get_runtime()
    cases = {"torch.neg": (torch.neg, (q,)),
             "2 x torch.empty": (lambda: (torch.empty(1, 1, 16, 64, device="cuda", dtype=torch.float16),
                                          torch.empty(1, 1, 16, device="cuda")), ())}
    for name in sorted(rt.ids):
        cfg = config_from_name(name)
        if cfg.dtype == "fp16" and cfg.head_dim == 64 and not cfg.causal:
            cases[name] = (rt.fwd_dense, (rt.ids[name], q, q, q, 0.125, 0))
    us = host_us_per_call(cases, CALLS, REPEATS)
    for name, t in us.items():
        print(f"{t:7.2f} us  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": [1, 1, 16, 64], "calls": CALLS, "repeats": REPEATS, "us": us}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
