"""The lazy softmax's precision against the eager one: the strided fused-QKV reference check of
tests/flashcore_cutlass/test_kernels_gpu.py (B2 S300 H4, scale 0.3: peaked rows) under
torch.manual_seed(0..SEEDS-1), per built variant named: how many draws fail the tests' bound
max|out-ref| <= 2 * max|sdpa-ref| + 1e-3, and the error over that bound (max, mean).

    SEEDS=40 PYTHONPATH=$PWD:$PWD/tests python benchmarks/experiments/sm90/lazy_precision.py NAME [NAME ...]

benchmarks/NOTES.md, 2026-11-27 18:48-, calls 6-7 (results/lazy_precision-2026-11-27T1935-H100.txt).
"""

from __future__ import annotations

import os
import sys

import torch

from flashcore_codegen import config_from_name
from flashcore_cutlass.runtime import get_runtime
from gpu_support import check_against_reference

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> int:
    rt = get_runtime()
    seeds = int(os.environ.get("SEEDS", "40"))
    for name in sys.argv[1:]:
        if name not in rt.hashes:
            print(f"{name}: not built", flush=True)
            continue
        cfg = config_from_name(name)
        bad, ratios = [], []
        for seed in range(seeds):
            torch.manual_seed(seed)
            qkv = torch.randn(2, 300, 3, 4, cfg.head_dim, device="cuda", dtype=DTYPES[cfg.dtype])
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
            v = v[..., :cfg.v_head_dim]
            run = lambda q, k, v, o, lse: rt.run(name, q, k, v, 0.3, o, lse)  # noqa: E731
            try:
                err, sdpa_err, _ = check_against_reference(run, q, k, v, cfg.causal, 0.3)
                ratios.append(err / (2 * sdpa_err + 1e-3))
            except AssertionError as e:
                bad.append((seed, str(e).splitlines()[0][:100]))
        mean = sum(ratios) / max(len(ratios), 1)
        print(f"{name}: {len(bad)} failures of {seeds}; err/tol max {max(ratios, default=0):.3f} mean {mean:.3f}; "
              f"{bad[:4]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
