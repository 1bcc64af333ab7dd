"""Where an isolated (cold) call's extra microseconds go: the GPU time of one call, events around
it, in four states of the L2 cache, for SDPA and each built variant of the shape's dtype/head dim:

- ``cold``: L2 flushed (256 MB zeroed, as triton's do_bench does: bench_small's *eager*);
- ``data_warm``: flushed, then q/k/v read back into L2 (the kernel's code still cold);
- ``code_warm``: flushed, then the same implementation run on a small problem of its own (code and
  descriptors warm, this call's data cold);
- ``warm``: nothing flushed (the previous call ran on the same inputs).

Every case waits behind a GPU spin (torch.cuda._sleep) before its start event, so host time never
enters a figure (the call is queued before the GPU reaches it). Cases interleave per repetition.

    python benchmarks/experiments/small/cold_parts.py --shape 1,8,512,64 [--dtype fp16] [--reps 60] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from flashcore_codegen import config_from_name
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime

F = torch.nn.functional
STATES = ("cold", "data_warm", "code_warm", "warm")
SPIN_CYCLES = 200_000  # ~100 us at H100 clocks: longer than any host work queued behind it


def variant_cases(rt, dtype: str, d: int, causal: bool, names: list[str] | None):
    for name in sorted(rt.ids):
        cfg = config_from_name(name)
        if names and name not in names:
            continue
        if cfg.dtype == dtype and cfg.head_dim == d and cfg.causal == causal and getattr(cfg, "family", "") == "sm90":
            yield name


def measure(shape, dtype_name: str, causal: bool, reps: int, names: list[str] | None) -> list[dict]:
    b, h, sq, sk, d = shape
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    rt = get_runtime()
    q, k, v = random_qkv(b, h, sq, sk, d, dtype)
    tq, tk, tv = random_qkv(1, 1, 128, 128, d, dtype)  # the small problem that warms code
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.int8, device="cuda")
    scale = d ** -0.5
    cases = {"sdpa": (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                      lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal))}
    for name in variant_cases(rt, dtype_name, d, causal, names):
        cases[name] = ((lambda n: lambda: rt.run(n, q, k, v, scale))(name),
                       (lambda n: lambda: rt.run(n, tq, tk, tv, scale))(name))

    def prepare(state, small):
        if state != "warm":
            flush.zero_()
        if state == "data_warm":
            for t in (q, k, v):
                t.sum()
        elif state == "code_warm":
            small()
        torch.cuda._sleep(SPIN_CYCLES)

    times = {(c, s): [] for c in cases for s in STATES}
    for fn, small in cases.values():  # compile/load/first-call costs out of the way
        fn(); small()
    torch.cuda.synchronize()
    for _ in range(reps):
        for c, (fn, small) in cases.items():
            for s in STATES:
                prepare(s, small)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                times[(c, s)].append((start, end))
        torch.cuda.synchronize()
    rows = []
    for c in cases:
        row = {"shape": list(shape), "dtype": dtype_name, "causal": causal, "case": c}
        for s in STATES:
            row[s + "_us"] = statistics.median(a.elapsed_time(e) * 1000.0 for a, e in times[(c, s)])
        rows.append(row)
        print(f"{b},{h},{sq},{sk},{d} {dtype_name}{' causal' if causal else ''}  {c.removeprefix('fc_'):46s} " +
              "  ".join(f"{s} {row[s + '_us']:6.2f}" for s in STATES), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", required=True, help="B,H,S,D or B,H,Sq,Sk,D")
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--only", action="append", help="variants to time (default: every built one that fits)")
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for text in args.shape:
        b, h, s, *rest = map(int, text.split(","))
        shape = (b, h, s, s, rest[0]) if len(rest) == 1 else (b, h, s, rest[0], rest[1])
        rows += measure(shape, args.dtype, args.causal, args.reps, args.only)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}, "rows": rows},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
