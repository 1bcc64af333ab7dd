"""`flashcore doctor`: one report of the machine, the toolchain, the build and the tuning table,
to paste into a bug report. Every section reports what it could not find instead of failing."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Iterator

from . import __version__
from .env import gpu_label


def _gpu_lines() -> Iterator[str]:
    try:
        import torch
    except ImportError as exc:
        yield f"torch: not importable ({exc})"
        return
    yield f"torch: {torch.__version__} (CUDA {torch.version.cuda or 'none: a CPU-only build'})"
    if not torch.cuda.is_available():
        yield "GPU: none visible to torch"
        return
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        yield f"GPU {i}: {props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, " \
              f"{props.total_memory / 2**30:.0f} GiB"
    try:
        driver = torch._C._cuda_getDriverVersion()  # e.g. 13000 for 13.0
        yield f"driver CUDA version: {driver // 1000}.{driver % 1000 // 10}"
    except Exception:  # private API: absent in some torch releases
        pass


def _toolchain_lines(build_dir: Path) -> Iterator[str]:
    from .build import preflight

    check = preflight(link=True, jobs=None, build_dir=build_dir)
    for key, value in check.facts.items():
        yield f"{key}: {value}"
    for problem in check.problems:
        yield f"problem: {problem}"


def _build_lines(build_dir: Path) -> Iterator[str]:
    from .build import EXTENSION_NAME, read_manifest

    manifest = read_manifest(build_dir)
    variants = manifest.get("variants", {})
    so = build_dir / EXTENSION_NAME
    yield f"build dir: {build_dir} ({'extension linked' if so.exists() else 'no extension'})"
    by_family = collections.Counter(name.split("_")[1] for name in variants)
    yield f"variants built: {len(variants)} ({', '.join(f'{f} {n}' for f, n in sorted(by_family.items())) or 'none'})"
    spilling = sorted(n for n, v in variants.items() if v.get("spill_stores"))
    if spilling:
        yield f"variants that spill: {len(spilling)}"
    if manifest.get("failed"):
        yield f"variants that failed to compile: {', '.join(manifest['failed'])}"
    if manifest.get("link_error"):
        yield f"last link failed: {manifest['link_error'].strip().splitlines()[-1]}"


def _table_lines() -> Iterator[str]:
    from .table import TuningTable

    table = TuningTable()
    rows = table.rows(include_stale=True)
    yield f"tuning table: {table.path}, {len(rows)} rows"
    if not rows:
        return
    try:
        from .runtime import get_runtime

        rt = get_runtime()
    except Exception as exc:
        yield f"current or stale: cannot tell ({exc})"
        return
    reasons = collections.Counter()
    current = 0
    for r in rows:
        why = [f"{field} {getattr(r.env, field)} != {getattr(rt.env, field)}"
               for field in ("gpu_name", "sm_count", "cuda", "torch", "cutlass")
               if getattr(r.env, field) != getattr(rt.env, field)]
        if r.variant not in rt.hashes:
            why.append("variant not built")
        elif rt.hashes[r.variant] != r.source_hash:
            why.append("variant source changed since")
        if why:
            reasons["; ".join(why)] += 1
        else:
            current += 1
    yield f"rows current: {current}; stale: {len(rows) - current}"
    for reason, n in reasons.most_common():
        yield f"  {n} stale rows: {reason}"


def _shipped_lines() -> Iterator[str]:
    from .shipped import DATA_DIR, FILE_PATTERN, PATH_VARIABLE, default_paths, default_table, matches

    if not default_paths():
        off = os.environ.get(PATH_VARIABLE, "").lower() == "off"
        yield ("shipped table: off (FLASHCORE_SHIPPED_TABLE=off)" if off else
               f"shipped table: none (no {FILE_PATTERN} in {DATA_DIR})")
        return
    shipped = default_table()
    for part in shipped.parts:  # one line per file
        origin = part.provenance
        gpus = sorted({(r.gpu_name, r.sm_count) for r in part.rows})
        measured = " of " + ", ".join(gpu_label(name, sms) for name, sms in gpus) if gpus else ""
        yield f"shipped table: {part.path}, {len(part)} rows{measured}" + (
            f" (commit {origin.get('commit')}, exported {origin.get('exported_at')})" if origin else "")
    if not len(shipped):
        return
    try:
        from .runtime import get_runtime

        rt = get_runtime()
    except Exception as exc:
        yield f"shipped rows usable here: cannot tell ({exc})"
        return
    usable = sum(matches(r, rt.env, rt.hashes) for r in shipped.rows)
    yield f"shipped rows usable here: {usable} of {len(shipped)} (same GPU, SM count and source hash)"
    if usable:
        return
    here = (rt.env.gpu_name, rt.env.sm_count)
    # Another Hopper GPU's rows that stand in (ShippedTable.borrowed): GPU -> keys it lends.
    lent = (shipped.borrowed(key, rt.env, rt.hashes) for key in {r.problem_key for r in shipped.rows})
    lenders = collections.Counter(gpu_label(r.gpu_name, r.sm_count) for r in lent if r is not None)
    fallback = ("dispatch borrows the winners of "
                + ", ".join(f"{gpu} for {n} key{'s' * (n != 1)}" for gpu, n in sorted(lenders.items()))
                + ", and uses the heuristic elsewhere," if lenders else "dispatch uses the heuristic")
    if here not in {(r.gpu_name, r.sm_count) for r in shipped.rows}:
        yield (f"  none was measured on this GPU ({here[0]}, {here[1]} SMs): {fallback} until `flashcore tune` "
               "measures your shapes")
    else:
        yield ("  their source hashes are not this build's (the kernels changed since they were measured): "
               f"{fallback} until `flashcore tune --suite shipped` measures every shipped key again")


def _launch_lines(environ=None) -> Iterator[str]:
    import os

    from .runtime import programmatic_launch_from_env

    environ = os.environ if environ is None else environ
    source = f"FLASHCORE_PDL={environ['FLASHCORE_PDL']}" if "FLASHCORE_PDL" in environ else "FLASHCORE_PDL unset"
    try:
        state = "on" if programmatic_launch_from_env(environ) else "off"
    except ValueError as exc:
        yield f"programmatic dependent launch (sm90): {exc}"
        return
    yield f"programmatic dependent launch (sm90): {state} ({source})"


def report(build_dir: Path) -> list[str]:
    lines = [f"flashcore-cutlass {__version__}"]
    for section in (_gpu_lines, lambda: _toolchain_lines(build_dir), lambda: _build_lines(build_dir), _table_lines,
                    _shipped_lines, _launch_lines):
        try:
            lines.extend(section())
        except Exception as exc:  # a report must finish: say what failed and go on
            lines.append(f"(section failed: {type(exc).__name__}: {exc})")
    return lines
