"""Does a variant finish a grid-cell call, and does it match SDPA there? Each case runs in a child
process under a watch (a call not done after --timeout seconds counts as hung; the child is killed
and the next case starts in a new one): one call checked against SDPA, then --reps calls back to
back (persistent CTAs then see many tiles each, PDL overlaps consecutive launches). Written for the
K/V multicast tiles (501c662, reverted in 41c6ce6; benchmarks/NOTES.md 2026-11-28 21:20-), whose
first grid A/B stopped without a word; it takes any built variant.

  python benchmarks/experiments/sm90/kv_multicast_probe.py CASE [CASE ...] [--timeout 30] [--reps 20]

CASE: VARIANT@B,H,S, bf16 inputs (e.g. fc_sm90_bf16_d64_causal_m64_n64_s2_sch1_p1_kv1_c3_lr1@16,32,1024);
FLASHCORE_PDL=0 in the environment turns programmatic dependent launch off for every case.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def child(variant: str, b: int, h: int, s: int, reps: int) -> None:
    import torch

    from flashcore_codegen import config_from_name
    from flashcore_cutlass.reference import random_qkv
    from flashcore_cutlass.runtime import get_runtime

    cfg = config_from_name(variant)
    rt = get_runtime()
    q, k, v = random_qkv(b, h, s, s, cfg.head_dim, torch.bfloat16)
    scale = cfg.head_dim ** -0.5
    res = rt.run(variant, q, k, v, scale)
    out = res[0] if isinstance(res, (tuple, list)) else res
    torch.cuda.synchronize()
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=cfg.causal)
    err = (out.float() - ref.float()).abs().max().item()
    start = time.perf_counter()
    for _ in range(reps):
        rt.run(variant, q, k, v, scale)
    torch.cuda.synchronize()
    us = (time.perf_counter() - start) / reps * 1e6
    print(f"ok max|err| vs SDPA {err:.2e}, {us:.1f} us a call over {reps}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="+")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        variant, shape = args.cases[0].split("@")
        child(variant, *map(int, shape.split(",")), args.reps)
        return 0
    for case in args.cases:
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, __file__, "--child", "--reps", str(args.reps), case],
                               capture_output=True, text=True, timeout=args.timeout)
            tail = (r.stdout + r.stderr).strip().splitlines()
            verdict = tail[-1] if tail else f"rc {r.returncode}, no output"
        except subprocess.TimeoutExpired:
            verdict = f"HUNG (no result after {args.timeout:.0f} s)"
        print(f"{case}: {verdict} [{time.perf_counter() - t0:.1f} s]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
