"""Host time per call of the packed-sequence API against the batched one and their raw ops, on a
tiny input (launch-bound: the host's time is what a call costs): where attention_varlen's extra
microseconds go.

    python benchmarks/experiments/small/host_varlen.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json

import torch

import flashcore_cutlass as fc
from flashcore_cutlass import api
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_per_call

CALLS, REPEATS = 2000, 7


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    b, s, h, hkv, d = 2, 64, 4, 2, 128
    q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16, heads_k=hkv)
    packed = [t.transpose(1, 2).reshape(b * s, t.shape[1], d).contiguous() for t in (q, k, v)]
    cu = torch.arange(0, (b + 1) * s, s, dtype=torch.int32, device="cuda")
    rt = get_runtime()
    vid = rt.variant_id(Problem("bf16", d, True, b, h, s, s, True, d))
    bottom_right, right, left = api.window_diagonals(api.TOP_LEFT, None)
    cases = {
        "torch.neg": (torch.neg, (q,)),
        "attention (batched)": (lambda: fc.attention(q, k, v, causal=True), ()),
        "attention_varlen": (lambda: fc.attention_varlen(*packed, cu, cu, s, s, causal=True, validate=False), ()),
        "raw op fwd_dense (batched)": (rt.fwd_dense, (vid, q, k, v, d ** -0.5, 0)),
        "raw op fwd (varlen)": (rt.fwd, (vid, *packed, d ** -0.5, None, None, right, left, 0.0, cu, cu, s, s,
                                         bottom_right)),
    }
    us = host_us_per_call(cases, CALLS, REPEATS)
    for name, t in us.items():
        print(f"{t:7.2f} us  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": [b, s, h, hkv, d], "calls": CALLS, "repeats": REPEATS, "us": us}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
