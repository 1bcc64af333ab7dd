"""What issue 7's long-sequence targets ask of a kernel against the card's dense-GEMM rate at its power
cap, measured in one run with the grid's method (interleaved rounds, each implementation alone for
``--warmup-ms`` before it is timed one call at a time, nvidia-smi's SM clock and power read right after):

- cuBLAS's bf16 GEMMs (``torch.mm``, square, of each ``--gemm-n``, output allocated per call as attention's
  is): the tensor cores' best case, nothing but MMAs, at the clock the power cap leaves them;
- flashcore and SDPA's default backend at the grid's non-causal S = 16k cells (B = 1, H*D = 2048).

Per cell: the rate, the SM clock and power, the target (issue 7: D64 >= 500, D128 >= 660, D256 >= 700
TFLOP/s), and each rate as a share of the GEMM's. A target at a share of the GEMM rate that no
attention kernel reaches says what it asks; the work per clock (TFLOP/s per GHz) separates a kernel's
schedule from the clock its power draw leaves it, and the energy per FLOP (W over TFLOP/s) is what a rate at
the cap is bound by.

    python benchmarks/cap_bound.py [--rounds 3] [--warmup-ms 500] [--gemm-n 8192,16384] [--head-dims 64,128,256]
        [--variant D=NAME ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import time_rounds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SMI_ERRORS, add_warmup_argument, environment, format_table, gpu_state, nvidia_smi,  # noqa: E402
                    save)

F = torch.nn.functional
SEQLEN = 16384
GRID_WIDTH = 2048  # H*D of the FA3 grid
TARGETS = {64: 500.0, 128: 660.0, 256: 700.0}  # issue 7: non-causal S = 16k, TFLOP/s


# ---- pure helpers (tests/benchmarks/test_cap_bound.py runs them on CPU) ----

def gemm_flops(n: int) -> float:
    return 2.0 * n ** 3


def gemm_name(n: int) -> str:
    return f"gemm {n}"


def best_gemm(rows: dict) -> str:
    """The fastest GEMM row's name: the rate the shares are taken against."""
    return max((name for name in rows if name.startswith("gemm ")), key=lambda name: rows[name]["tflops"])


def attention_flops(heads: int, seqlen: int, head_dim: int) -> float:
    """FLOPs of QK^T and PV, one sequence, no mask (the project's convention: Problem.flops)."""
    return Problem("bf16", head_dim, False, 1, heads, seqlen, seqlen).flops


def tflops(flops: float, us: float) -> float:
    return flops / (us * 1e6)


def summarise(name: str, flops: float, times_us: list[float], states: list[dict]) -> dict:
    """Median time and rate, and the medians of the clock and power read after each timing."""
    us = statistics.median(times_us)
    clocks = [s["sm_clock_mhz"] for s in states if "sm_clock_mhz" in s]
    powers = [s["power_w"] for s in states if "power_w" in s]
    row = {"name": name, "us": us, "tflops": tflops(flops, us), "rounds_us": times_us, "rounds_gpu_state": states,
           "sm_clock_mhz": statistics.median(clocks) if clocks else None,
           "power_w": statistics.median(powers) if powers else None}
    row["tflops_per_ghz"] = row["tflops"] / (row["sm_clock_mhz"] / 1000.0) if row["sm_clock_mhz"] else None
    # Energy per FLOP at the cap (W over TFLOP/s = pJ per FLOP): what the rate is bound by there.
    row["pj_per_flop"] = row["power_w"] / row["tflops"] if row["power_w"] else None
    return row


def parse_variants(items: list[str]) -> dict[int, str]:
    """``["128=fc_sm90_...", ...]`` -> {128: "fc_sm90_..."}."""
    out = {}
    for item in items:
        d, sep, name = item.partition("=")
        if not sep or not d.strip().isdigit() or not name.strip():
            raise SystemExit(f"--variant takes D=NAME (e.g. 128=fc_sm90_bf16_d128_full_...), not {item!r}")
        out[int(d)] = name.strip()
    return out


def shares(rows: dict, gemm_tflops: float) -> dict:
    """Each row's rate, and each target, as a share of the (fastest) GEMM's rate."""
    out = {name: r["tflops"] / gemm_tflops for name, r in rows.items()}
    out.update({f"target d{d}": t / gemm_tflops for d, t in TARGETS.items()})
    return out


def report(result: dict) -> str:
    gemm = result["rows"][result["best_gemm"]]
    def fmt(x, spec):
        return format(x, spec) if x is not None else "-"
    table = []
    for name, r in result["rows"].items():
        table.append([name, f"{r['us']:.1f}", f"{r['tflops']:.0f}", f"{result['shares'][name]:.3f}",
                      fmt(r["sm_clock_mhz"], ".0f"), fmt(r["power_w"], ".0f"), fmt(r["tflops_per_ghz"], ".0f"),
                      fmt(r["pj_per_flop"], ".3f")])
    sizes = ", ".join(f"{n}^3" for n in result["gemm_n"])
    lines = [f"Power limit {result['power_limit_w']} W; bf16 GEMMs {sizes} (torch.mm) against the 16k "
             f"non-causal cells (B = 1, H*D = {GRID_WIDTH}), medians of {result['rounds']} rounds, "
             f"{result['warmup_ms']:.0f} ms alone before each timing:",
             format_table(["impl", "us", "TFLOP/s", "x best GEMM", "MHz", "W", "TFLOP/s per GHz", "pJ/FLOP"], table)]
    lines.append("Targets as a share of the best GEMM's rate: " + ", ".join(
        f"D{d} {t:.0f} TFLOP/s = {result['shares'][f'target d{d}']:.3f}x" for d, t in TARGETS.items()))
    lines.append(f"(Best GEMM: {result['best_gemm']}, {gemm['tflops']:.0f} TFLOP/s at {fmt(gemm['sm_clock_mhz'], '.0f')} MHz.)")
    return "\n".join(lines)


# ---- GPU measurements ----

def power_limit_w(run=subprocess.run) -> float | None:
    try:
        return float(nvidia_smi("power.limit", run)[0])
    except SMI_ERRORS:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them (default 3)")
    ap.add_argument("--gemm-n", default="8192", help="comma-separated sizes of square GEMMs (default 8192)")
    ap.add_argument("--head-dims", default="64,128,256", help="comma-separated head dims (default 64,128,256)")
    ap.add_argument("--variant", action="append", default=[], metavar="D=NAME",
                    help="time this built variant at head dim D instead of dispatch's choice (repeatable; e.g. an "
                         "A/B of a header change, where the shipped rows are stale and dispatch falls back)")
    add_warmup_argument(ap)
    ap.add_argument("--json", help="where to write the results (default: benchmarks/results/)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("cap_bound.py needs a CUDA GPU", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.gemm_n.split(",")]
    fns, flops = {}, {}
    for n in sizes:
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        fns[gemm_name(n)] = lambda a=a, b=b: torch.mm(a, b)
        flops[gemm_name(n)] = gemm_flops(n)
    forced = parse_variants(args.variant)
    for d in (int(x) for x in args.head_dims.split(",")):
        h = GRID_WIDTH // d
        q, k, v = random_qkv(1, h, SEQLEN, SEQLEN, d, torch.bfloat16)
        if d in forced:
            rt = get_runtime()
            fns[f"flashcore d{d}"] = lambda q=q, k=k, v=v, name=forced[d], scale=d ** -0.5: rt.run(
                name, q, k, v, scale, lse_unused=True)
        else:
            fns[f"flashcore d{d}"] = lambda q=q, k=k, v=v: fc.attention(q, k, v)
        fns[f"sdpa d{d}"] = lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v)
        flops[f"flashcore d{d}"] = flops[f"sdpa d{d}"] = attention_flops(h, SEQLEN, d)
    states = {name: [] for name in fns}
    per = time_rounds(fns, args.rounds, after=lambda name: states[name].append(gpu_state()), reps=10,
                      warmup_ms=args.warmup_ms)
    rows = {name: summarise(name, flops[name], per[name], states[name]) for name in fns}
    best = best_gemm(rows)
    result = {"environment": environment(), "rounds": args.rounds, "warmup_ms": args.warmup_ms, "gemm_n": sizes,
              "variants": {f"d{d}": name for d, name in forced.items()},
              "power_limit_w": power_limit_w(), "targets_tflops": {f"d{d}": t for d, t in TARGETS.items()},
              "best_gemm": best, "rows": rows, "shares": shares(rows, rows[best]["tflops"])}
    path = save("cap_bound", result, args.json)
    print(report(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
