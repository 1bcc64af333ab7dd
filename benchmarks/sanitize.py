#!/usr/bin/env python3
"""compute-sanitizer (memcheck, racecheck, synccheck) over one built variant per kernel family
and mask, at odd shapes; a summary table last; exit status 1 on any error.

    python3 benchmarks/sanitize.py [--tools memcheck racecheck synccheck] [--one-per-family]
                                   [--variant NAME ...] [-j 3] [--log-dir DIR]
    (bash benchmarks/sanitize.sh ... is the same)

Runs on the GPU machine after `flashcore build` (the extension in $FLASHCORE_BUILD_DIR or
$FLASHCORE_CACHE_DIR/build; nothing is built or downloaded here). Families are read from the
build manifest's variant names, so a new family is covered as soon as it is built. For each
variant and tool this script starts

    compute-sanitizer --tool TOOL --error-exitcode 99 python3 sanitize.py --driver VARIANT

where the driver makes inputs on the CPU, runs the variant through
flashcore_cutlass.runtime.get_runtime().run() at B=2 H=3 with (Sq, Sk) = (17, 129), (127, 1)
and (1, 1), with the default and a negative scale, then a sliding window with softcap (masked
variants), a smaller head dim and a V head dim of its own (families that pad) and packed
variable-length sequences, and
checks each result against the fp32 reference (exit 3 when wrong). PyTorch's caching allocator is off (PYTORCH_NO_CUDA_MEMORY_CACHING=1)
so that every tensor is its own allocation and memcheck sees accesses past its end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# (B, H, Sq, Sk). The last two have more tiles than the H100 has SMs (2 x 70 x 2 and 70 x 3 at block_m 128), so
# persistent kernels run several tiles per CTA: the cross-tile barriers (Q/O buffers, the
# dynamic scheduler's ring) are exercised; the last one's tiles are whole and its keys many, so
# stream-K variants cut its key tiles between CTAs and combine the pieces (stream_k.cuh).
SHAPES = [(2, 3, 17, 129), (2, 3, 127, 1), (2, 3, 1, 1), (2, 70, 200, 200), (1, 70, 384, 8200)]
TOOLS = ("memcheck", "racecheck", "synccheck")
ERROR_EXIT = 99  # compute-sanitizer's exit status when it found errors
WRONG_EXIT = 3  # the driver's exit status when a result is wrong


# ------------------------------------------------------------------------------------------------
# The driver: runs under compute-sanitizer, one variant.
# ------------------------------------------------------------------------------------------------

def driver(variant: str) -> int:
    import torch

    from flashcore_codegen import config_from_name
    from flashcore_cutlass.reference import reference_attention
    from flashcore_cutlass.runtime import get_runtime

    cfg = config_from_name(variant)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[cfg.dtype]
    rt = get_runtime()
    wrong = 0
    for b, h, sq, sk in SHAPES:
        gen = torch.Generator().manual_seed(sq * 1000 + sk)
        q, k, v = (torch.randn(b, h, s, dim, generator=gen).to(dtype)
                   for s, dim in ((sq, cfg.head_dim), (sk, cfg.head_dim), (sk, cfg.v_head_dim)))
        qc, kc, vc = (t.cuda() for t in (q, k, v))
        for scale in (cfg.head_dim ** -0.5, -0.3):
            out, lse = rt.run(variant, qc, kc, vc, scale)
            torch.cuda.synchronize()
            ref_out, ref_lse = reference_attention(q, k, v, cfg.causal, scale=scale)
            err = (out.cpu().float() - ref_out).abs().max().item()
            lse_err = (lse.cpu() - ref_lse).abs().max().item()
            ok = err < 0.05 and lse_err < 1e-2  # NaN compares False: wrong
            wrong += not ok
            print(f"driver: {variant} B{b} H{h} Sq{sq} Sk{sk} scale {scale:+.3f}: max|out-ref| {err:.3g}, "
                  f"max|lse-ref| {lse_err:.3g} {'ok' if ok else 'WRONG'}", flush=True)
    wrong += features(rt, variant, cfg, dtype)
    return WRONG_EXIT if wrong else 0


def features(rt, variant, cfg, dtype) -> int:
    """The newer memory paths: a sliding window with softcap (masked variants), a head dim below
    the variant's and a V head dim other than Q/K's (families that pad: TMA / predicated zero
    fill and clipped stores), and packed
    variable-length sequences (offsets into one tensor, the predicated store of a sequence's
    last tile, an empty sequence). Returns the count of wrong results."""
    import torch

    from flashcore_cutlass.reference import reference_attention, visible_range

    def report(what, out, lse, ref_out, ref_lse):
        err = (out.cpu().float() - ref_out).abs().max().item()
        finite = torch.isfinite(ref_lse)
        lse_ok = torch.equal(torch.isinf(lse.cpu()), ~finite) and (
            not finite.any() or (lse.cpu()[finite] - ref_lse[finite]).abs().max().item() < 1e-2)
        ok = err < 0.05 and lse_ok
        print(f"driver: {variant} {what}: max|out-ref| {err:.3g} {'ok' if ok else 'WRONG'}", flush=True)
        return not ok

    wrong = 0
    gen = torch.Generator().manual_seed(7)
    d, dv = cfg.head_dim, cfg.v_head_dim
    q, k, v = (torch.randn(2, 3, s, dim, generator=gen).to(dtype) for s, dim in ((200, d), (300, d), (300, dv)))
    if cfg.causal:
        for window, causal in (((40, 0), True), ((30, 25), False)):
            lo, hi = visible_range(causal, window, 200, 300)
            out, lse = rt.run(variant, q.cuda(), k.cuda(), v.cuda(), d ** -0.5, None, None, hi, lo, 30.0)
            torch.cuda.synchronize()
            ref = reference_attention(q, k, v, causal, scale=d ** -0.5, window=window, softcap=30.0)
            wrong += report(f"window {window} causal={causal} softcap 30", out, lse, *ref)
    if cfg.PADS_HEAD_DIM:
        dp = d - 24
        qp, kp, vp = q[..., :dp].contiguous(), k[..., :dp].contiguous(), v[..., :min(dp, dv)].contiguous()
        out, lse = rt.run(variant, qp.cuda(), kp.cuda(), vp.cuda(), dp ** -0.5)
        torch.cuda.synchronize()
        wrong += report(f"head dim {dp}", out, lse, *reference_attention(qp, kp, vp, cfg.causal, scale=dp ** -0.5))
        # A V head dim of its own, narrower and wider than Q/K's: V/O tensor maps of their own extent.
        # (A variant with a V head dim of its own: narrower ones than that.)
        pairs = ((d, d // 2), (d // 2, d - 8)) if dv == d else ((d, dv // 2), (d - 24, dv - 8))
        for dq, dvp in pairs:
            qp, kp, vp = q[..., :dq].contiguous(), k[..., :dq].contiguous(), v[..., :dvp].contiguous()
            out, lse = rt.run(variant, qp.cuda(), kp.cuda(), vp.cuda(), dq ** -0.5)
            torch.cuda.synchronize()
            wrong += report(f"head dims q/k {dq}, v {dvp}", out, lse,
                            *reference_attention(qp, kp, vp, cfg.causal, scale=dq ** -0.5))
    if getattr(cfg, "pack_gqa", 0):
        # The group's query heads as tile rows (5-D TMA boxes, rows with their own query position):
        # groups that fill the row slots and one that leaves holes (G = 7), several tiles.
        for b, h, hkv, sq, sk, window in ((1, 32, 8, 5, 300, None), (2, 28, 4, 3, 129, (50, 0)), (1, 8, 1, 40, 70, None)):
            qg, kg, vg = (torch.randn(b, n, s, d, generator=gen).to(dtype) for n, s in ((h, sq), (hkv, sk), (hkv, sk)))
            causal = "bottom_right" if cfg.causal else False
            window = window if cfg.causal else None
            lo, hi = visible_range(causal, window, sq, sk)
            out, lse = rt.run(variant, qg.cuda(), kg.cuda(), vg.cuda(), d ** -0.5, None, None, hi or 0, lo, 30.0)
            torch.cuda.synchronize()
            ref = reference_attention(qg, kg, vg, causal, scale=d ** -0.5, window=window, softcap=30.0)
            wrong += report(f"GQA {h}/{hkv} packed rows Sq{sq} Sk{sk} window {window}", out, lse, *ref)
    # The last sequence's first 199 rows see no key under bottom-right causal: tiles without keys, the
    # persistent kernels' Q-release path that hung before 2c03237 (benchmarks/NOTES.md, 2026-11-28 16:51-).
    lens_q, lens_k = [17, 0, 130, 1, 200], [129, 5, 130, 64, 1]
    q3, k3, v3 = (torch.randn(sum(n), 3, dim, generator=gen).to(dtype)
                  for n, dim in ((lens_q, d), (lens_k, d), (lens_k, dv)))
    cu = lambda lens: torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)  # noqa: E731
    out, lse = rt.fwd(rt.ids[variant], q3.cuda(), k3.cuda(), v3.cuda(), d ** -0.5, None, None, 0, None, 0.0,
                      cu(lens_q).cuda(), cu(lens_k).cuda(), max(lens_q), max(lens_k), cfg.causal)
    torch.cuda.synchronize()
    as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
    q0 = k0 = 0
    for nq, nk in zip(lens_q, lens_k):
        if nq:
            ref_out, ref_lse = reference_attention(as4(q3[q0:q0 + nq]), as4(k3[k0:k0 + nk]), as4(v3[k0:k0 + nk]),
                                                   "bottom_right" if cfg.causal else False, scale=d ** -0.5)
            wrong += report(f"packed sequence {nq}x{nk}", as4(out[q0:q0 + nq]), lse[:, q0:q0 + nq].unsqueeze(0),
                            ref_out, ref_lse)
        q0, k0 = q0 + nq, k0 + nk
    return wrong


# ------------------------------------------------------------------------------------------------
# The orchestrator.
# ------------------------------------------------------------------------------------------------

def find_sanitizer(explicit: str | None) -> str | None:
    candidates = [explicit, shutil.which("compute-sanitizer")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(str(Path(home) / "bin" / "compute-sanitizer"))
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent / "compute-sanitizer"))
    return next((c for c in candidates if c and Path(c).exists()), None)


def pick_variants(names: list[str], per_mask: bool) -> list[str]:
    """One variant per family (and mask, and kernel design: sm90 split-KV clusters or single
    CTAs): smallest head_dim, lean 0, then the name."""
    from flashcore_codegen import config_from_name

    best: dict[tuple, tuple] = {}
    for name in names:
        try:
            cfg = config_from_name(name)
        except ValueError:
            print(f"note: {name} is not a variant of a known family; skipped", file=sys.stderr)
            continue
        design = getattr(cfg, "splits", 1) > 1
        group = (cfg.family, design, cfg.causal) if per_mask else (cfg.family, design)
        rank = (cfg.head_dim, getattr(cfg, "lean", 0), name)
        if group not in best or rank < best[group]:
            best[group] = rank
    return sorted(rank[-1] for rank in best.values())


def parse_report(text: str) -> tuple[int | None, int]:
    """(errors, warnings) from compute-sanitizer's summary lines; errors None when absent."""
    errors = warnings = None
    for m in re.finditer(r"ERROR SUMMARY: (\d+) errors?", text):
        errors = max(errors or 0, int(m.group(1)))
    for m in re.finditer(r"RACECHECK SUMMARY: \d+ hazards? displayed \((\d+) errors?, (\d+) warnings?\)", text):
        errors = max(errors or 0, int(m.group(1)))
        warnings = max(warnings or 0, int(m.group(2)))
    return errors, warnings or 0


def run_one(sanitizer: str, tool: str, variant: str, log_dir: Path, extra: list[str], timeout: float) -> dict:
    cmd = [sanitizer, "--tool", tool, "--error-exitcode", str(ERROR_EXIT), *extra,
           sys.executable, str(Path(__file__).resolve()), "--driver", variant]
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1", PYTHONUNBUFFERED="1")
    log = log_dir / f"{variant}.{tool}.log"
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              timeout=timeout)
        text, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or ""
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        text += f"\nsanitize.py: timed out after {timeout:.0f} s\n"
        rc = None
    log.write_text(" ".join(cmd) + "\n" + text)
    errors, warnings = parse_report(text)
    if rc == WRONG_EXIT:
        status = "wrong results"
    elif rc is None:
        status = "timeout"
    elif errors is None:
        status = f"no sanitizer summary (exit {rc})"
    elif errors or rc == ERROR_EXIT:
        status = "ERRORS"
    elif rc != 0:
        status = f"exit {rc}"
    else:
        status = "ok"
    return {"variant": variant, "tool": tool, "errors": errors, "warnings": warnings, "status": status,
            "seconds": time.time() - t0, "log": str(log)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", metavar="VARIANT", help=argparse.SUPPRESS)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=(*TOOLS, "initcheck"))
    ap.add_argument("--variant", action="append", help="check this variant (repeatable) instead of picking")
    ap.add_argument("--one-per-family", action="store_true", help="one variant per family, not per (family, mask)")
    ap.add_argument("--build-dir", help="where `flashcore build` put the extension (default: flashcore's)")
    ap.add_argument("--sanitizer", help="compute-sanitizer executable (default: PATH, $CUDA_HOME/bin, next to nvcc)")
    ap.add_argument("--sanitizer-arg", action="append", default=[], metavar="ARG",
                    help="extra compute-sanitizer argument (repeatable), e.g. --sanitizer-arg=--racecheck-report=all")
    ap.add_argument("-j", "--jobs", type=int, default=3, help="sanitizer processes at once (default 3)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per sanitizer run (default 900)")
    ap.add_argument("--log-dir", default=os.environ.get("SANITIZE_LOG_DIR", "/tmp/flashcore_sanitize"))
    args = ap.parse_args(argv)

    if args.build_dir:
        os.environ["FLASHCORE_BUILD_DIR"] = str(Path(args.build_dir).resolve())
    if args.driver:
        return driver(args.driver)

    from flashcore_cutlass.build import EXTENSION_NAME, default_build_dir, read_manifest

    build_dir = default_build_dir()
    if not (build_dir / EXTENSION_NAME).exists():
        print(f"error: no extension in {build_dir}; run `flashcore build` first (or pass --build-dir)", file=sys.stderr)
        return 2
    built = sorted(read_manifest(build_dir)["variants"])
    variants = args.variant or pick_variants(built, per_mask=not args.one_per_family)
    missing = [v for v in variants if v not in built]
    if missing or not variants:
        print(f"error: not built: {missing or 'no variants at all'} (built: {len(built)})", file=sys.stderr)
        return 2
    sanitizer = find_sanitizer(args.sanitizer)
    if sanitizer is None:
        print("error: compute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, next to nvcc); "
              "pass --sanitizer", file=sys.stderr)
        return 2
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{sanitizer}: {', '.join(args.tools)} over {len(variants)} variants "
          f"({'one per family' if args.one_per_family else 'one per family and mask'}); logs in {log_dir}",
          flush=True)

    jobs = [(tool, v) for v in variants for tool in args.tools]
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, sanitizer, tool, v, log_dir, args.sanitizer_arg, args.timeout)
                   for tool, v in jobs]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results.append(r)
            print(f"  {r['status']:>8}  {r['tool']:<9} {r['variant']}  ({r['seconds']:.0f} s)", flush=True)

    results.sort(key=lambda r: (r["variant"], TOOLS.index(r["tool"]) if r["tool"] in TOOLS else 9))
    width = max(len(r["variant"]) for r in results)
    print()
    print(f"{'variant':<{width}}  {'tool':<9}  {'errors':>6}  {'warnings':>8}  {'seconds':>7}  status")
    for r in results:
        errors = "-" if r["errors"] is None else r["errors"]
        print(f"{r['variant']:<{width}}  {r['tool']:<9}  {errors:>6}  {r['warnings']:>8}  {r['seconds']:>7.0f}  "
              f"{r['status']}")
    bad = [r for r in results if r["status"] != "ok"]
    print(f"\n{len(results) - len(bad)}/{len(results)} runs clean" +
          (f"; see {', '.join(r['log'] for r in bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
