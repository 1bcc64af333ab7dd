"""Host time per call on a tiny input (launch-bound: the host's time is what a call costs).

Default: each built fp16 D64 non-causal variant's raw op, next to torch.neg and the two
allocations every call makes: which part of a call's host time is the family's launch path (sm90:
TMA descriptors, cluster launch) and which is common to all.
``--packed``: attention_varlen against attention() on the same work batched, and their raw ops:
where a packed call's extra microseconds go.

    python benchmarks/experiments/small/host_parts.py [--packed] [--json PATH]
"""

from __future__ import annotations

import argparse
import json

import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass import api
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_per_call

CALLS, REPEATS = 2000, 7


def variant_cases(rt) -> tuple[list, dict]:
    q = torch.randn(1, 1, 16, 64, device="cuda", dtype=torch.float16)
    cases = {"torch.neg": (torch.neg, (q,)),
             "2 x torch.empty": (lambda: (torch.empty(1, 1, 16, 64, device="cuda", dtype=torch.float16),
                                          torch.empty(1, 1, 16, device="cuda")), ())}
    for name in sorted(rt.ids):
        cfg = config_from_name(name)
        if cfg.dtype == "fp16" and cfg.head_dim == 64 and not cfg.causal:
            cases[name] = (rt.fwd_dense, (rt.ids[name], q, q, q, 0.125, 0))
    return [1, 1, 16, 64], cases


def packed_cases(rt) -> tuple[list, dict]:
    b, s, h, hkv, d = 2, 64, 4, 2, 128
    q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16, heads_k=hkv)
    packed = [t.transpose(1, 2).reshape(b * s, t.shape[1], d).contiguous() for t in (q, k, v)]
    cu = torch.arange(0, (b + 1) * s, s, dtype=torch.int32, device="cuda")
    vid = rt.variant_id(Problem("bf16", d, True, b, h, s, s, True, d))
    bottom_right, right, left = api.window_diagonals(api.TOP_LEFT, None)
    return [b, s, h, hkv, d], {
        "torch.neg": (torch.neg, (q,)),
        "attention (batched)": (lambda: fc.attention(q, k, v, causal=True), ()),
        "attention_varlen": (lambda: fc.attention_varlen(*packed, cu, cu, s, s, causal=True, validate=False), ()),
        "raw op fwd_dense (batched)": (rt.fwd_dense, (vid, q, k, v, d ** -0.5, 0)),
        "raw op fwd (varlen)": (rt.fwd, (vid, *packed, d ** -0.5, None, None, right, left, 0.0, cu, cu, s, s,
                                         bottom_right)),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packed", action="store_true", help="packed sequences against the batched call")
    ap.add_argument("--json")
    args = ap.parse_args()
    shape, cases = (packed_cases if args.packed else variant_cases)(get_runtime())
    us = host_us_per_call(cases, CALLS, REPEATS)
    for name, t in us.items():
        print(f"{t:7.2f} us  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": shape, "calls": CALLS, "repeats": REPEATS, "us": us}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
