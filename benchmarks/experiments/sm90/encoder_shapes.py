"""Attention shapes of encoder models (no mask): ours through dispatch (attention()) and named
variants (rt.run, no dispatch) against SDPA's default backend, bf16, interleaved rounds of per-call
CUDA-event medians. The question (2026-11-27 14:45-): do the untuned picks for ViT, BERT, Whisper
and diffusion-UNet shapes keep pace with SDPA, and would a 128-row non-causal D64 tile (not a
default: the D64 non-causal defaults have 64- and 192-row tiles) serve the short rows better?

    python benchmarks/experiments/sm90/encoder_shapes.py [VARIANT ...] [--rounds 3] [--json PATH]

Every output (dispatch and variants) is checked against the fp32 reference on sampled rows first.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_rounds

F = torch.nn.functional

# name: (B, H, S, D)
SHAPES = {
    "vit-b16-224": (64, 12, 197, 64),
    "vit-l14-224": (32, 16, 257, 64),
    "bert-base-128": (128, 12, 128, 64),
    "bert-base-512": (32, 12, 512, 64),
    "whisper-large-enc": (8, 20, 1500, 64),
    "sdxl-32x32": (2, 20, 1024, 64),
    "sdxl-64x64": (2, 10, 4096, 64),
    "sd15-64x64-d40": (2, 8, 4096, 40),
    "sd15-32x32-d80": (2, 8, 1024, 80),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*", help="named variants to time beside dispatch (those that can run a shape)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    rt = get_runtime()
    rows = []
    for name, (b, h, s, d) in SHAPES.items():
        q, k, v = random_qkv(b, h, s, s, d, torch.bfloat16)
        scale = d ** -0.5
        impls = {"flashcore": lambda: fc.attention(q, k, v), "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
        head_dim = -(-d // 64) * 64 if d > 64 else 64
        for variant in args.variants:
            if f"_d{head_dim}_" in variant:
                impls[variant] = lambda variant=variant: rt.run(variant, q, k, v, scale)[0]
        picked = rt.registry.choose(Problem("bf16", d, False, b, h, s, s)).variant
        sampled = sample_rows(s, count=128, device=q.device)
        ref, _ = reference_attention(q, k, v, False, rows=sampled)
        errors = {i: (fn()[:, :, sampled].float() - ref).abs().max().item() for i, fn in impls.items()}
        per = time_rounds(impls, args.rounds, reps=20, warmup=3, min_ms=30)
        us = {i: statistics.median(t) for i, t in per.items()}
        rows.append({"case": name, "shape": [b, h, s, d], "picked": picked, "us": us, "max_abs_err": errors})
        line = "  ".join(f"{i.replace('fc_sm90_bf16_', '')} {t:7.1f}" for i, t in us.items())
        print(f"{name:18s} x{us['sdpa'] / us['flashcore']:.3f} SDPA  pick {picked.replace('fc_sm90_bf16_', '')}: {line}"
              f"  max err {max(errors.values()):.4f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
