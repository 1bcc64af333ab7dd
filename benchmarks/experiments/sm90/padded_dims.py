"""Which padded head dims run slowly on the D64 variants, and on which tile? (An open question of
2026-11-27 13:30-: D40 without a mask ran 1.6x slower a head than D32 on the same two-CTA 64x128
kernel, while every other padded dim measured kept pace with SDPA.)

Times each named variant (rt.run: no dispatch) on one (B, H, S) for head dims 32..64 in steps of 8,
bf16, with SDPA beside it (causal with --causal: name causal variants then); per-call CUDA-event
medians, interleaved rounds.
Hypothesis to test: rows whose bytes are not a multiple of 32 (D = 8 mod 16: 40, 56) make the
TMA loads slow (their row starts are 16- but not 32-byte aligned).

    python benchmarks/experiments/sm90/padded_dims.py VARIANT [VARIANT ...] [--shape 16,32,1024] [--causal]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_rounds

F = torch.nn.functional


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--shape", default="16,32,1024", help="B,H,S")
    ap.add_argument("--dims", default="32,40,48,56,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--causal", action="store_true", help="causal SDPA beside causal variants")
    ap.add_argument("--json")
    args = ap.parse_args()
    b, h, s = map(int, args.shape.split(","))
    rt = get_runtime()
    rows = []
    for d in map(int, args.dims.split(",")):
        q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16)
        impls = {name: (lambda name=name: rt.run(name, q, k, v, d ** -0.5)) for name in args.variants}
        impls["sdpa"] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)
        per = time_rounds(impls, args.rounds, reps=20, warmup=3, min_ms=30)
        us = {name: statistics.median(t) for name, t in per.items()}
        rows.append({"head_dim": d, "row_bytes": 2 * d, "us": us})
        print(f"D{d:3d} ({2 * d:3d} B rows): " + "  ".join(f"{n.replace('fc_sm90_bf16_', '')} {t:8.1f}" for n, t in us.items()),
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": [b, h, s], "causal": args.causal, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
