"""Head dims the kernels do not build natively (every multiple of 8 from 32 to 256 runs, padded to
the family's next head dim inside the kernel), ours against SDPA's default backend in the same run
(interleaved rounds of per-call CUDA-event medians), with the native dims beside them for scale.

Each cell has 16k tokens (B * S = 16384) and about 2048 model columns (H = 2048 // D), bf16, causal
and not, as the baseline grid; plus the shapes of models with such head dims (Phi-3-mini: 32 heads of
96; Stable Diffusion 1.5's UNet: 8 heads of 40 / 80 / 160, non-causal).
TFLOP/s count the call's own head dim (4 * B * H * pairs * D), not the padded one.

    python benchmarks/bench_head_dims.py [--dims 32,80,96] [--seqlens 1024,4096] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.runtime import get_runtime

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import add_warmup_argument, environment, format_table, save  # noqa: E402
from flashcore_cutlass.timing import time_rounds  # noqa: E402

F = torch.nn.functional

DIMS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160)
SEQLENS = (1024, 4096)
TOKENS = 16384
# name: (B, H, S, D, causal)
MODEL_SHAPES = {
    "phi3-mini-prefill": (1, 32, 4096, 96, True),
    "sd15-unet-64x64": (2, 8, 4096, 40, False),
    "sd15-unet-32x32": (2, 8, 1024, 80, False),
    "sd15-unet-16x16": (2, 8, 256, 160, False),
}


def grid_shapes(dims, seqlens) -> dict:
    shapes = {}
    for d in dims:
        for s in seqlens:
            for causal in (False, True):
                b, h = max(1, TOKENS // s), max(1, 2048 // d)
                shapes[f"D{d} S{s} {'causal' if causal else 'full'}"] = (b, h, s, d, causal)
    return shapes


def bench_shape(name, shape, rounds: int, warmup_ms: float) -> dict:
    b, h, s, d, causal = shape
    q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16)
    impls = {"flashcore": lambda: fc.attention(q, k, v, causal=causal),
             "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)}
    rows = sample_rows(s, count=128, device=q.device)
    ref, _ = reference_attention(q, k, v, causal, rows=rows)
    errors = {impl: (fn()[:, :, rows].float() - ref).abs().max().item() for impl, fn in impls.items()}
    per = time_rounds(impls, rounds, reps=20, warmup=3, min_ms=30, warmup_ms=warmup_ms)
    us = {impl: statistics.median(ts) for impl, ts in per.items()}
    pairs = s * (s + 1) // 2 if causal else s * s
    flops = 4.0 * b * h * pairs * d
    return {"case": name, "batch": b, "heads": h, "seqlen": s, "head_dim": d, "causal": causal,
            "variant": get_runtime().registry.choose(Problem("bf16", d, causal, b, h, s, s)).variant,
            "us": us, "rounds_us": per, "tflops": {i: flops / t / 1e6 for i, t in us.items()},
            "speedup_vs_sdpa": us["sdpa"] / us["flashcore"], "max_abs_err": errors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default=",".join(map(str, DIMS)))
    ap.add_argument("--seqlens", default=",".join(map(str, SEQLENS)))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-models", action="store_true")
    add_warmup_argument(ap)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    shapes = grid_shapes([int(x) for x in args.dims.split(",")], [int(x) for x in args.seqlens.split(",")])
    if not args.no_models:
        shapes.update(MODEL_SHAPES)
    rows = [bench_shape(name, shape, args.rounds, args.warmup_ms) for name, shape in shapes.items()]
    path = save("bench_head_dims", {"environment": environment(), "rounds": args.rounds, "warmup_ms": args.warmup_ms,
                                    "rows": rows}, args.json)
    table = [[r["case"], f"B{r['batch']} H{r['heads']}", f"{r['us']['flashcore']:.0f} ({r['tflops']['flashcore']:.0f})",
              f"{r['us']['sdpa']:.0f} ({r['tflops']['sdpa']:.0f})", f"{r['speedup_vs_sdpa']:.3f}",
              f"{r['max_abs_err']['flashcore']:.2g}", r["variant"].replace("fc_", "")] for r in rows]
    print(format_table(["case (bf16)", "shape", "flashcore us (TF/s)", "SDPA us (TF/s)", "speedup", "max err",
                        "variant"], table))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
