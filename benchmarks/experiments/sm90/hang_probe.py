"""Which packed (varlen) calls of a variant hang: each case runs in a child process under a
watch: a call not done after --timeout seconds counts as hung, the child exits (the driver tears
the kernel down) and a new child goes on from the next case.

  python benchmarks/experiments/sm90/hang_probe.py VARIANT [VARIANT ...] [--timeout 5]

A case: (name, lens_q, lens_k, heads, heads_k). The first is test_varlen_gpu.py's
test_persistent_variant_packed_many_tiles; the others take it apart (MHA, one sequence at a time,
without the empty / keyless sequences). A result that returns is also checked against the
reference (the test's check_packed)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

LQ = [1000, 33, 0, 517, 1, 260, 129]
LK = [1000, 700, 5, 517, 300, 260, 1]
CASES = [("test-case", LQ, LK, 32, 8), ("mha", LQ, LK, 32, 32), ("heads4/1", LQ, LK, 4, 1),
         ("no-empty-q", [1000, 33, 517, 1, 260, 129], [1000, 700, 517, 300, 260, 1], 32, 8),
         ("no-keyless-rows", [1000, 33, 0, 517, 1, 260], [1000, 700, 5, 517, 300, 260], 32, 8)]
CASES += [(f"seq{i}", [q], [k], 32, 8) for i, (q, k) in enumerate(zip(LQ, LK)) if q > 0]
CASES += [("seq-pair-0-6", [1000, 129], [1000, 1], 32, 8), ("dense-equal-4x1000", [1000] * 4, [1000] * 4, 32, 8)]


def child(variant: str, start: int, hang_s: float) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [os.path.join(here, "../../../tests"), os.path.join(here, "../../../tests/flashcore_cutlass")]
    import math

    import torch
    from test_varlen_gpu import DTYPES, check_packed, packed

    from flashcore_codegen import config_from_name
    from flashcore_cutlass.runtime import get_runtime

    rt = get_runtime()
    cfg = config_from_name(variant)
    for i in range(start, len(CASES)):
        name, lq, lk, h, hk = CASES[i]
        print(f"START {i} {name}", flush=True)
        q, k, v, cu_q, cu_k = packed(lq, lk, h, hk, cfg.head_dim, DTYPES[cfg.dtype], seed=4)
        scale = 1 / math.sqrt(cfg.head_dim)
        out = torch.full((q.shape[0], h, v.shape[-1]), float("nan"), device="cuda", dtype=q.dtype)
        lse = torch.full((h, q.shape[0]), float("nan"), device="cuda")
        as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
        t0 = time.perf_counter()
        rt.fwd(rt.ids[variant], as4(q), as4(k), as4(v), scale, as4(out), lse.unsqueeze(0), 0, None, 0.0, cu_q, cu_k,
               max(lq), max(lk), bool(cfg.causal))
        done = torch.cuda.Event()
        done.record()
        while not done.query():  # a hung kernel never completes: leave, and the driver tears it down
            if time.perf_counter() - t0 > hang_s:
                print(f"HANG {i} {name} (not done after {hang_s:.0f} s)", flush=True)
                os._exit(3)
            time.sleep(0.001)
        ms = (time.perf_counter() - t0) * 1e3
        try:
            check_packed(out, lse, q, k, v, cu_q, cu_k, "bottom_right" if cfg.causal else False, scale)
            verdict = "ok"
        except AssertionError as e:
            verdict = f"WRONG ({str(e).splitlines()[0]})"
        print(f"DONE {i} {name}: {verdict} ({ms:.1f} ms)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--timeout", type=float, default=5, help="seconds a call may take before it counts as hung")
    ap.add_argument("--child", type=int, default=None)
    a = ap.parse_args()
    if a.child is not None:
        child(a.variants[0], a.child, a.timeout)
        return
    for variant in a.variants:
        print(f"== {variant}", flush=True)
        start = 0
        while start < len(CASES):
            proc = subprocess.Popen([sys.executable, __file__, variant, "--child", str(start), "--timeout", str(a.timeout)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            out, _ = proc.communicate()
            lines = out.splitlines()
            started = [int(ln.split()[1]) for ln in lines if ln.startswith("START")]
            for ln in lines:
                if not ln.startswith("START"):  # results, errors, and a watched build's HANGWATCH lines
                    print("  " + ln, flush=True)
            if proc.returncode == 3 and started:
                start = started[-1] + 1
            elif proc.returncode != 0 and started:
                print(f"  CRASH at {started[-1]} {CASES[started[-1]][0]}: {lines[-3:]}", flush=True)
                start = started[-1] + 1
            else:
                if not started:
                    print("  child printed nothing:", lines[-5:], flush=True)
                break


if __name__ == "__main__":
    main()
