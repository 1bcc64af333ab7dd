"""Run one grid cell's kernel a few times, ours (a named variant) or SDPA's, for Nsight Compute:

    ncu --clock-control none -k regex:'kernel_entry|sdpa|fmha|flash' --launch-skip 2 --launch-count 1 \\
        python benchmarks/experiments/sm90/profile_cells.py --impl NAME|sdpa --d 64 --s 512 [--causal]

The grid's shapes: bf16, B*S = 16k tokens, H*D = 2048 (bench_sdpa.py); or any (B, H, S) with --shape,
in --dtype (the issue-8 shapes: --shape 1,8,512 --dtype fp16 --d 64).
"""

from __future__ import annotations

import argparse

import torch

from flashcore_cutlass.reference import random_qkv

F = torch.nn.functional


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, help="a built variant's name, or 'sdpa' (torch's default backend)")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--s", type=int, default=512)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--shape", help="B,H,S instead of the grid's (B = 16k / S, H = 2048 / D)")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"))
    args = ap.parse_args()
    b, h = 16384 // args.s, 2048 // args.d
    if args.shape:
        b, h, args.s = map(int, args.shape.split(","))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    q, k, v = random_qkv(b, h, args.s, args.s, args.d, dtype)
    if args.impl == "sdpa":
        def fn():
            return F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)
    else:
        from flashcore_cutlass.runtime import get_runtime

        rt = get_runtime()

        def fn():
            return rt.run(args.impl, q, k, v, args.d ** -0.5)
    for _ in range(args.calls):
        fn()
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
