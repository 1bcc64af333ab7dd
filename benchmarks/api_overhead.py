"""Per-call cost of the Python path of flashcore_cutlass.attention, up to the kernel op, on CPU.

The binding's op is replaced by a stub that returns preallocated results and dispatch by a stub
runtime, so this needs neither a GPU nor a build: what is timed is the argument checks, the
per-shape cache, the causal offset and the call itself, i.e. what a launch-bound call pays in
Python on top of the kernel. Also timed: the same call through the flashcore::attention library
op (what a compiled graph calls), to show what eager mode saves by calling the implementation
directly. Best of many rounds (a shared machine is noisy); compare runs on one machine only.

    python benchmarks/api_overhead.py [--rounds 40] [--number 2000]
"""

from __future__ import annotations

import argparse
import timeit

import torch

import flashcore_cutlass as fc
from flashcore_cutlass import api


class _StubRuntime:
    def variant_id(self, problem):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--number", type=int, default=2000, help="calls per timed round")
    args = parser.parse_args()

    q = torch.randn(2, 8, 256, 64, dtype=torch.bfloat16)
    kv_gqa = torch.randn(2, 2, 256, 64, dtype=torch.bfloat16)
    results = (torch.empty_like(q), torch.empty(2, 8, 256))
    api._fwd = lambda *a: results
    api._fwd_dense = lambda *a: results
    api.get_runtime = lambda: _StubRuntime()
    api._check_device = lambda *a: None  # CPU tensors stand in for CUDA ones
    op = torch.ops.flashcore.attention.default
    cases = {
        "attention(q, k, v)": lambda: fc.attention(q, q, q),
        "attention(causal=True, return_lse=True)": lambda: fc.attention(q, q, q, causal=True, return_lse=True),
        "attention(GQA 8/2, causal='bottom_right')": lambda: fc.attention(q, kv_gqa, kv_gqa, causal="bottom_right"),
        "scaled_dot_product_attention(is_causal=True)": lambda: fc.scaled_dot_product_attention(q, q, q,
                                                                                                is_causal=True),
        "scaled_dot_product_attention(GQA, enable_gqa=True)": lambda: fc.scaled_dot_product_attention(
            q, kv_gqa, kv_gqa, enable_gqa=True),
        "flashcore::attention op (compiled graphs)": lambda: op(q, q, q, "none", None),
    }
    best = {}
    for _ in range(args.rounds):
        for name, call in cases.items():
            call()
            seconds = timeit.timeit(call, number=args.number)
            best[name] = min(best.get(name, float("inf")), seconds / args.number * 1e6)
    print(f"torch {torch.__version__}; best of {args.rounds} rounds of {args.number} calls, op stubbed")
    for name, us in best.items():
        print(f"  {name:52s} {us:6.2f} us")


if __name__ == "__main__":
    main()
