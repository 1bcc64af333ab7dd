"""Short queries over a KV cache with FlashAttention's bottom-right causal alignment (decoding,
chunked prefill): what dispatch picks now that the problem key holds the alignment (the heuristic's
split-KV preference counts the keys a bottom-right row sees), every built causal variant, and torch's
SDPA with the same mask as an explicit boolean attn_mask; graph us per call.

    python benchmarks/experiments/small/decode_bottom_right.py [--dtype bf16] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph

F = torch.nn.functional
SHAPES = [(1, 32, 1, 8192), (1, 32, 64, 8192), (1, 8, 128, 8192), (4, 8, 16, 4096), (1, 32, 256, 4096)]


def graph_us(fn) -> float:
    return time_graph(fn, calls_per_graph=20, reps=20).median_us


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--json")
    args = ap.parse_args()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    rt = get_runtime()
    rows_out = []
    for d in (64, 128):
        for b, h, sq, sk in SHAPES:
            q, k, v = random_qkv(b, h, sq, sk, d, dtype)
            offset = sk - sq
            problem = Problem(args.dtype, d, True, b, h, sq, sk, bottom_right=True)
            choice = rt.registry.choose(problem)
            out = fc.attention(q, k, v, causal="bottom_right")
            rows = sample_rows(sq, device=q.device)
            ref, _ = reference_attention(q, k, v, "bottom_right", rows=rows)
            err = (out[:, :, rows].float() - ref).abs().max().item()
            mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril(diagonal=offset)
            times = {
                "attention()": graph_us(lambda: fc.attention(q, k, v, causal="bottom_right")),
                "sdpa mask": graph_us(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)),
                "sdpa unmasked": graph_us(lambda: F.scaled_dot_product_attention(q, k, v)),
            }
            for name in sorted(rt.ids):
                cfg = config_from_name(name)
                if cfg.family == "sm90" and cfg.causal and cfg.head_dim == d and cfg.dtype == args.dtype:
                    times[name] = graph_us((lambda n: lambda: rt.run(n, q, k, v, d ** -0.5, causal_offset=offset))(name))
            rows_out.append({"shape": [b, h, sq, sk, d], "dispatch": choice.variant, "reason": choice.reason,
                             "key": str(problem.key), "max_abs_err": err, "graph_us": times})
            best = min((n for n in times if n.startswith("fc_")), key=times.get)
            print(f"D{d} {b},{h},{sq}/{sk} [{problem.key}]: attention() {times['attention()']:.1f} us "
                  f"-> {choice.variant.removeprefix('fc_')} ({choice.reason}), err {err:.2e}; best "
                  f"{best.removeprefix('fc_')} {times[best]:.1f}; SDPA mask {times['sdpa mask']:.1f}, "
                  f"unmasked {times['sdpa unmasked']:.1f}", flush=True)
            for n, t in times.items():
                if n.startswith("fc_"):
                    print(f"    {n.removeprefix('fc_'):52s} {t:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows_out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
