"""Shared by the benchmark scripts: environment record, result files, table printing."""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The commit measured: $FLASHCORE_COMMIT when set (device_run.sh sets it from .commit, since
    the tree copied to the GPU machine may carry a stale .git), else git's HEAD (+ "-dirty")."""
    pinned = os.environ.get("FLASHCORE_COMMIT", "unknown")
    if pinned != "unknown":
        return pinned
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment() -> dict:
    from flashcore_cutlass.env import Environment

    env = Environment.current().as_dict()
    props = torch.cuda.get_device_properties(0)
    env.update(
        cudnn=str(torch.backends.cudnn.version()),
        driver_capability=f"sm_{props.major}{props.minor}",
        commit=git_commit(),
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return env


def save(kind: str, payload: dict, json_path: str | None = None) -> Path:
    """Write results to benchmarks/results/<kind>-<date>-<gpu>-<commit>.json (and json_path)."""
    env = payload["environment"]
    gpu = env["gpu_name"].replace(" ", "_").replace("/", "_")
    stamp = env["measured_at"][:16].replace(":", "")
    path = RESULTS_DIR / f"{kind}-{stamp}-{gpu}-{env['commit']}.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=1) + "\n"
    path.write_text(text)
    if json_path:
        Path(json_path).write_text(text)
    return path


# Benchmarks that compare implementations run each alone this long before timing it, so that it is
# timed at the power cap (~690 W read after the timings) and at the clocks its own draw gives.
# Without it, the call after a slower, cooler kernel (SDPA's FA2 backend, FlexAttention) ran at the
# clocks that one left: ours, timed after FA2 in every round, gained up to ~10 % at long S
# (benchmarks/NOTES.md, session of 2026-11-26 15:50: geo-mean over D128/D256 1.039x at 0 ms, 1.024x
# at 100 ms, 1.016x at 500 ms).
WARMUP_MS = 500.0


def add_warmup_argument(ap) -> None:
    """The --warmup-ms option of the comparing benchmarks (default WARMUP_MS)."""
    ap.add_argument("--warmup-ms", type=float, default=WARMUP_MS,
                    help="run each implementation this long before timing it, so that the clocks settle to its "
                         f"own power draw (default {WARMUP_MS:g}; 0 = three calls only)")


# What reading nvidia-smi can raise: no binary, a failed or timed-out call, output that is no number.
SMI_ERRORS = (OSError, ValueError, IndexError, subprocess.SubprocessError)


def nvidia_smi(fields: str, run=subprocess.run) -> list[str]:
    """nvidia-smi's values of ``fields`` (its --query-gpu list) for the card in use, as strings;
    raises one of SMI_ERRORS when they cannot be read."""
    out = run(["nvidia-smi", "-i", os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0],
               f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
              capture_output=True, text=True, timeout=10, check=True).stdout
    return [x.strip() for x in out.strip().splitlines()[0].split(",")]


def gpu_state(run=subprocess.run) -> dict:
    """The card's SM clock (MHz), power draw (W) and temperature (C) now, from nvidia-smi (empty
    when it cannot be read). Sampled right after a timing: what the clocks did during it."""
    try:
        clock, power, temp = nvidia_smi("clocks.sm,power.draw,temperature.gpu", run)
        return {"sm_clock_mhz": float(clock), "power_w": float(power), "temp_c": float(temp)}
    except SMI_ERRORS:
        return {}


def format_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def check_passes(max_err: float, tol: float, lse_rel: float, finite: bool) -> bool:
    """The tuner's acceptance rule (:func:`flashcore_cutlass.tune.accepts`)."""
    from flashcore_cutlass.tune import accepts

    return accepts(max_err, tol, lse_rel, finite)


def check_against_reference(q, k, v, causal: bool = False, rows_checked: int | None = 256) -> dict:
    """attention()'s output and LSE against the fp32 reference, with the tuner's tolerance: twice
    SDPA's own error on the same call plus a floor, the LSE within LSE_RTOL relative. Checks
    ``rows_checked`` query rows (the ends and an even spread; None: every row), so that a 16k-row
    problem costs a reference of 256 rows, not of 16k. K/V with fewer heads than q: grouped-query
    attention (SDPA with ``enable_gqa``)."""
    import flashcore_cutlass as fc
    from flashcore_cutlass.reference import reference_attention, sample_rows
    from flashcore_cutlass.tune import ERR_FACTOR, ERR_FLOOR, LSE_RTOL

    sq = q.shape[2]
    rows = torch.arange(sq, device=q.device) if rows_checked is None else sample_rows(sq, rows_checked, q.device)
    ref_out, ref_lse = reference_attention(q, k, v, causal, rows=rows)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=bool(causal),
                                                           enable_gqa=k.shape[1] != q.shape[1])
    sdpa_err = (sdpa[:, :, rows].float() - ref_out).abs().max().item()
    out, lse = fc.attention(q, k, v, causal=causal, return_lse=True)
    out, lse = out[:, :, rows], lse[:, :, rows]
    err = (out.float() - ref_out).abs().max().item()
    lse_rel = ((lse - ref_lse).abs() / ref_lse.abs().clamp_min(1.0)).max().item()
    finite = bool(torch.isfinite(out).all().item()) and bool(torch.isfinite(lse).all().item())
    tol = ERR_FACTOR * sdpa_err + ERR_FLOOR
    return {"ok": check_passes(err, tol, lse_rel, finite), "max_abs_err": err, "tol": tol, "sdpa_max_abs_err": sdpa_err,
            "lse_rel_err": lse_rel, "lse_rtol": LSE_RTOL, "finite": finite, "rows_checked": len(rows)}
