"""The grid's short cells timed two ways, ours and SDPA default side by side, interleaved rounds:

- ``event``: CUDA events around one call from Python (what bench_sdpa.py reports): the GPU idles
  while the host prepares the launch, so host time per call is inside the interval;
- ``queued``: CUDA events around each of 20 calls queued back to back from Python (the host runs
  ahead, as in a model's forward pass): GPU time, the kernels' own start-up included;
- ``graph``: per call of 20 calls replayed from one CUDA graph: GPU time only;
- ``host``: the host time of one call issued to an idle GPU (what ``event`` waits for).

If a cell's ratio to SDPA differs between the two, host overhead (not the kernel) explains that
part of it.

    python benchmarks/grid_timing_methods.py [--max-s 4096] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import flashcore_cutlass as fc
from flashcore_cutlass.reference import random_qkv
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.timing import host_us_isolated, time_calls, time_graph, time_queued
from flashcore_cutlass.tune import TORCH_DTYPES, baseline_grid

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import environment, format_table, save  # noqa: E402

F = torch.nn.functional
IMPLS = {
    "flashcore": lambda q, k, v, c: fc.attention(q, k, v, causal=c),
    "sdpa": lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-s", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rt = get_runtime()
    rows, table = [], []
    for p in baseline_grid():
        if p.seqlen_q > args.max_s:
            continue
        q, k, v = random_qkv(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, TORCH_DTYPES[p.dtype])
        times = {(m, n): [] for m in ("event", "queued", "graph", "host") for n in IMPLS}
        for _ in range(args.rounds):
            for name, fn in IMPLS.items():
                call = lambda: fn(q, k, v, p.causal)  # noqa: E731
                times[("event", name)].append(time_calls(call, reps=20, warmup=3, min_ms=30).median_us)
                times[("queued", name)].append(time_queued(call).median_us)
                times[("graph", name)].append(time_graph(call).median_us)
                times[("host", name)].append(host_us_isolated(call).median_us)
        med = {f"{m}_{n}": statistics.median(t) for (m, n), t in times.items()}
        row = {"problem": str(p), "head_dim": p.head_dim, "seqlen": p.seqlen_q, "causal": p.causal,
               "variant": rt.registry.choose(p).variant, "us": med,
               "ratio_event": med["event_sdpa"] / med["event_flashcore"],
               "ratio_queued": med["queued_sdpa"] / med["queued_flashcore"],
               "ratio_graph": med["graph_sdpa"] / med["graph_flashcore"]}
        rows.append(row)
        table.append([p.head_dim, "yes" if p.causal else "no", p.seqlen_q, f"{med['event_flashcore']:.1f}",
                      f"{med['event_sdpa']:.1f}", f"{row['ratio_event']:.3f}", f"{med['queued_flashcore']:.1f}",
                      f"{med['queued_sdpa']:.1f}", f"{row['ratio_queued']:.3f}", f"{med['graph_flashcore']:.1f}",
                      f"{med['graph_sdpa']:.1f}", f"{row['ratio_graph']:.3f}", f"{med['host_flashcore']:.1f}",
                      f"{med['host_sdpa']:.1f}"])
    print(format_table(["D", "causal", "S", "ours ev", "sdpa ev", "x ev", "ours q", "sdpa q", "x queued",
                        "ours graph", "sdpa graph", "x graph", "host ours", "host sdpa"], table))
    path = save("grid_timing_methods", {"environment": environment(), "rows": rows}, args.json)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
