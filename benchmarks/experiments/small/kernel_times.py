"""Device time of each built variant's kernel on launch-bound shapes (CUPTI, torch.profiler),
next to the per-call time of 20 calls replayed from one CUDA graph, SDPA's and a trivial op's:
where a small call's microseconds go (kernel vs launch gaps).

    python benchmarks/experiments/small/kernel_times.py [--shape B,H,S,D | B,H,Sq,Sk,D ...] [--dtype fp16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from flashcore_codegen import config_from_name
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.timing import time_graph

F = torch.nn.functional


def kernel_us(fn, calls: int = 20) -> float:
    """Mean device time of the kernels fn launches, per call (CUPTI)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    total = sum(e.device_time_total for e in prof.key_averages() if e.device_time_total > 0 and
                not e.key.startswith("cudaDevice"))
    return total / calls


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", default=None)
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--json")
    args = ap.parse_args()
    shapes = [tuple(map(int, s.split(","))) for s in (args.shape or ["1,1,128,64", "1,8,512,64", "1,8,1024,64"])]
    shapes = [(b, h, s, s, d) if len(rest) == 0 else (b, h, s, *rest, d) for b, h, s, *rest, d in shapes]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    rt = get_runtime()
    rows = []
    for b, h, sq, sk, d in shapes:
        q, k, v = random_qkv(b, h, sq, sk, d, dtype)
        x = torch.randn(16, device="cuda")
        cases = {"torch.neg(16)": lambda: torch.neg(x), "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
        for name in sorted(rt.ids):
            cfg = config_from_name(name)
            if cfg.dtype == args.dtype and cfg.head_dim == d and not cfg.causal:
                cases[name] = (lambda n: lambda: rt.run(n, q, k, v, d ** -0.5))(name)
        for name, fn in cases.items():
            kern = statistics.median(kernel_us(fn) for _ in range(3))
            graph = time_graph(fn, calls_per_graph=20, reps=20).median_us
            rows.append({"shape": [b, h, sq, sk, d], "case": name, "kernel_us": kern, "graph_us": graph})
            print(f"{b},{h},{sq},{sk},{d}  {name.removeprefix('fc_'):52s} kernel {kern:7.2f} us  graph/call {graph:7.2f} us",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
