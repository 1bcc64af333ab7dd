"""Does the last, partial wave of a persistent non-causal kernel cost a whole round?

A static persistent kernel with T equal tiles on P CTAs runs ceil(T / P) rounds. The grid's non-causal
cells have 2048 tiles at D128 (128-row tiles, 16 heads x 16k rows), 15.5 rounds of 132 SMs, so 16 are paid.
Test: (1, H, 16896) has exactly 132 tiles per head row at 128 rows; against (1, H, 16384) its tiles are
3.1 % longer and it has 3.1 % more of them. If the partial wave costs a round, ours takes ~1.031x the time
(same rounds, longer tiles); if not, ~1.0635x (the FLOP ratio). cuDNN in the same rounds as a control.

    python3 benchmarks/experiments/sm90/tail_waves.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from flashcore_cutlass.runtime import get_runtime

CASES = [  # (D, heads, variant of ours)
    (128, 16, "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1_lr1"),
    (256, 8, "fc_sm90_bf16_d256_full_m128_n64_s2_sch1_p1_kv1_lr1"),
]
LENGTHS = (16384, 16896)


def timed(fn, calls: int) -> float:
    """Mean us of `calls` back-to-back calls of fn, timed with CUDA events."""
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(calls):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) * 1000.0 / calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args()
    rt = get_runtime()
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} cudnn {torch.backends.cudnn.version()}")
    for d, h, variant in CASES:
        res = {}
        fns = {}
        for s in LENGTHS:
            q, k, v = (torch.randn(1, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            out = torch.empty_like(q)
            lse = torch.empty(1, h, s, device="cuda", dtype=torch.float32)
            fns[("ours", s)] = (lambda q=q, k=k, v=v, out=out, lse=lse: rt.run(variant, q, k, v, d ** -0.5, out, lse))
            fns[("sdpa", s)] = (lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v))
            ref = F.scaled_dot_product_attention(q, k, v)
            fns[("ours", s)]()
            assert (out - ref).abs().max().item() < 2e-2, "ours disagrees with SDPA"
        for key in fns:
            res[key] = []
            timed(fns[key], 20)  # warm-up
        for _ in range(args.rounds):
            for key, fn in fns.items():
                res[key].append(timed(fn, args.calls))
        for impl in ("ours", "sdpa"):
            t0, t1 = (statistics.median(res[(impl, s)]) for s in LENGTHS)
            tf = [4 * h * s * s * d / t / 1e6 for s, t in zip(LENGTHS, (t0, t1))]
            print(f"D{d} {impl}: {t0:8.1f} us ({tf[0]:.0f} TF) at {LENGTHS[0]}, {t1:8.1f} us ({tf[1]:.0f} TF) at "
                  f"{LENGTHS[1]}; time ratio {t1 / t0:.4f} (whole-round tail: 1.031, none: 1.0635)")


if __name__ == "__main__":
    main()
