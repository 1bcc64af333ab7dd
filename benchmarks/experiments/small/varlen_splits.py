"""Which split count serves a ragged batch of KV caches (attention_varlen, GQA packed into rows)?
Times every built bf16 D128 causal GQA-packing variant on packed sequences of uneven and of even
cache lengths (the same total keys), one query row (or 4) per sequence, graph us per call, each call on
its own K/V copy (>= 200 MB rotating). Dispatch keys a ragged batch like a padded one (its longest
lengths), so its split count is the padded batch's.

    python benchmarks/experiments/small/varlen_splits.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from flashcore_codegen import config_from_name
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_graph

CASES = {  # name: (keys of each sequence's cache, query rows per sequence)
    "ragged-1row": ([512, 1024, 2048, 3000, 4096, 6000, 8192, 700], 1),
    "even-1row": ([3446] * 8, 1),
    "ragged-4rows": ([512, 1024, 2048, 3000, 4096, 6000, 8192, 700], 4),
    "ragged-32seq": ([256, 4096, 1024, 8192, 512, 2048, 700, 3000] * 4, 1),
}
H, HKV, D = 32, 8, 128


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    rt = get_runtime()
    variants = sorted(n for n in rt.ids if n.startswith("fc_sm90_bf16_d128_causal") and
                      getattr(config_from_name(n), "pack_gqa", 0))
    rows = []
    for name, (lens_k, sq) in CASES.items():
        b = len(lens_k)
        cu = lambda lens: torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32,  # noqa: E731
                                       device="cuda")
        cu_q, cu_k = cu([sq] * b), cu(lens_k)
        copies = max(2, -(-(200 << 20) // (sum(lens_k) * HKV * D * 4)))
        data = [(torch.randn(b * sq, H, D, device="cuda", dtype=torch.bfloat16),
                 torch.randn(sum(lens_k), HKV, D, device="cuda", dtype=torch.bfloat16),
                 torch.randn(sum(lens_k), HKV, D, device="cuda", dtype=torch.bfloat16)) for _ in range(copies)]
        for variant in variants:
            turn = {"i": 0}

            def call():
                q, k, v = data[turn["i"] % copies]
                turn["i"] += 1
                return rt.fwd(rt.ids[variant], q, k, v, D ** -0.5, None, None, 0, None, 0.0, cu_q, cu_k, sq,
                              max(lens_k), True)
            us = time_graph(call, calls_per_graph=24, reps=10).median_us
            rows.append({"case": name, "variant": variant, "graph_us": us})
            print(f"{name:14s} {variant.replace('fc_sm90_bf16_d128_causal_', ''):28s} {us:7.1f} us", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
