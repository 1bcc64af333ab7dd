"""Run one of bench_models.py's packed-sequence cases a few times, for Nsight Compute's kernel
times (8 sequences of 1024 tokens, Llama-3-8B heads 32/8, D128, causal, bf16):

    ncu -k regex:kernel_entry --launch-skip 2 --launch-count 1 \\
        python benchmarks/experiments/sm90/profile_varlen.py --impl batched|same_layout|varlen
"""

from __future__ import annotations

import argparse

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.reference import random_qkv


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["batched", "same_layout", "varlen"])
    ap.add_argument("--calls", type=int, default=4)
    args = ap.parse_args()
    b, s, h, hkv, d = 8, 1024, 32, 8, 128
    q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16, heads_k=hkv)
    packed = [t.transpose(1, 2).reshape(b * s, t.shape[1], d).contiguous() for t in (q, k, v)]
    cu = torch.arange(0, (b + 1) * s, s, dtype=torch.int32, device="cuda")
    as_batch = [t.view(b, s, t.shape[1], d).transpose(1, 2) for t in packed]
    fn = {
        "batched": lambda: fc.attention(q, k, v, causal=True),
        "same_layout": lambda: fc.attention(*as_batch, causal=True),
        "varlen": lambda: fc.attention_varlen(*packed, cu, cu, s, s, causal=True, validate=False),
    }[args.impl]
    for _ in range(args.calls):
        fn()
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
