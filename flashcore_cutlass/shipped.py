"""The shipped tuning tables: winners the project measured, one file per GPU model, carried in
the package (``flashcore_cutlass/data/tuned_<model>.json``: ``tuned_h100.json``,
``tuned_h200.json``) so that a user who has not tuned still dispatches from measurements. The
user's own tuning table overrides them for the shapes it measured and those nearer them than any
shipped shape (see registry.py). Dispatch reads all the package's files as one table: a row
serves only the GPU it was measured on (below), so the files never compete; the split is for
reading and diffing.

**What a row is keyed on.** A kernel's speed is decided by the GPU and by the kernel as compiled,
not by the torch release that launches it. So a shipped row matches when

- its ``gpu_name`` and ``sm_count`` equal the current device's (a MIG slice or another board
  does not match), and
- its ``source_hash`` equals the hash of the variant as built now: that hash covers the
  rendered source, every header it includes, the nvcc flags, nvcc's version and the CUTLASS
  headers (flashcore_codegen.render.headers_digest), i.e. everything that changes the binary.

Any other row is stale and never used as this GPU's measurement. torch, CUDA runtime, CUTLASS
package and cuDNN versions, the commit and the dates are recorded for provenance only; they take
no part in the match, so the table serves users on other torch releases. Among the matching rows of a key the winner is
picked as in the user's table (:func:`flashcore_cutlass.table.pick_winner`: the row of the measured
shape nearest the problem's); an export holds one row per key, measured shape and GPU.

**Rows of another GPU (borrowed).** Where no row of this GPU matches a key, dispatch may take the
winner measured on another GPU (:meth:`ShippedTable.borrowed`) before its flat heuristic: a row
whose ``source_hash`` is the variant's as built now describes the same binary, and when that
binary's target is arch-specific (``sm_90a``: one compute capability only) the GPU it was
measured on is of this device's architecture (another Hopper board: an H100 PCIe or NVL, an H800,
an H200 or GH200, a MIG slice). Of the GPUs holding such rows for the key the nearest stands in:
the nearest SM count, then the longest common name prefix ("NVIDIA H100 PCIe" is nearer
"NVIDIA H100 80GB HBM3" than "NVIDIA H200"), then the name. Winners transfer well between
Hopper boards, better than the flat rules (benchmarks/experiments/heuristic_audit.py
--borrow-from; benchmarks/NOTES.md, 2026-11-28 12:28-): on an H200, over the 114 keys its tuning
run timed both first choices in, the H100's winners took 1.008x the fastest time (geometric mean;
3 keys > 1.05x) and the heuristic's first choice 1.023x (16 keys > 1.05x); on the H100, over 76
keys, the H200's winners 1.006x and the heuristic 1.019x. A borrowed row is a
heuristic's input, never a measurement of this GPU: dispatch says "borrowed" and names the GPU,
and ``flashcore tune`` replaces it with a measurement here.

**Format** (JSON; one row per line, so a diff reads row by row)::

    {"format": "flashcore-shipped-table", "version": 1,
     "provenance": {"commit": ..., "exported_at": ..., "flashcore": ..., "cudnn": ..., "toolchain": ...},
     "rows": [
      {"variant": ..., "problem_key": ..., "shape": ..., "median_us": ..., "spread_us": ..., "tflops": ...,
       "samples": ..., "max_abs_err": ..., "gpu_name": ..., "sm_count": ..., "cuda": ..., "torch": ...,
       "cutlass": ..., "source_hash": ..., "measured_at": ...},
      ...]}

(a row holds the stored fields of a tuning-table row; ``REQUIRED`` lists those a row must have).

It is written by ``flashcore table --export-shipped PATH`` from the current winners of the
user's table (:func:`export`); PATH may be a directory, which gets the file named for the GPU
(:func:`file_name_for`). A missing or empty (0-byte) file is an empty table; a file that cannot
be read as this format gives one :class:`~flashcore_cutlass.table.TableWarning` and is ignored
(the other files still serve). The package's files are read once per process, on first need.
``FLASHCORE_SHIPPED_TABLE=<path>`` reads that one file instead, ``FLASHCORE_SHIPPED_TABLE=off``
none (empty counts as unset).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterable, Mapping

from flashcore_codegen import arch, config_from_name

from .env import Environment
from .problem import ProblemKey
from .table import DISPLAY_FIELDS, Row, TableWarning, pick_winner, shape_winners

FORMAT = "flashcore-shipped-table"
VERSION = 1
DATA_DIR = Path(__file__).resolve().parent / "data"
FILE_PATTERN = "tuned_*.json"  # the package's files, one per GPU model (file_name_for)
PATH_VARIABLE = "FLASHCORE_SHIPPED_TABLE"

ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Row) if f.name not in DISPLAY_FIELDS)
# What matching and picking a winner read: a row without one of these is a damaged file.
REQUIRED = {"problem_key": str, "variant": str, "source_hash": str, "gpu_name": str, "sm_count": int,
            "shape": str, "median_us": float}
# Informational: a row may leave them out (older exports, hand edits).
OPTIONAL = {"spread_us": (float, 0.0), "tflops": (float, 0.0), "samples": (int, 0), "max_abs_err": (float, 0.0),
            "measured_at": (str, ""), "torch": (str, ""), "cuda": (str, ""), "cutlass": (str, "")}


@functools.lru_cache(maxsize=None)
def same_architecture_only(variant: str) -> bool:
    """Whether ``variant``'s binary runs on one compute capability only (its family's target is
    arch-specific, e.g. sm_90a), so that every GPU that measured it is of this device's architecture."""
    try:
        return arch.parse(config_from_name(variant).ARCH).arch_specific
    except (ValueError, KeyError):  # a name no family parses (a hand-edited row): never borrowed
        return False


def nearest_gpu(here: tuple[str, int], others: Iterable[tuple[str, int]]) -> tuple[str, int] | None:
    """Of the (name, SM count) GPUs ``others``, the one whose winners stand in for ``here``'s: the
    nearest SM count, then the longest common name prefix, then the name (deterministic)."""
    def common_prefix(name: str) -> int:
        return next((i for i, (a, b) in enumerate(zip(name, here[0])) if a != b), min(len(name), len(here[0])))

    return min(others, key=lambda gpu: (abs(gpu[1] - here[1]), -common_prefix(gpu[0]), gpu), default=None)


class ShippedTableError(ValueError):
    """The shipped table file cannot be read as the shipped format; the message says why."""


def matches(row: Row, env: Environment, valid_hashes: Mapping[str, str]) -> bool:
    """Whether ``row`` describes a kernel that would run here (see the module docstring)."""
    return (row.gpu_name == env.gpu_name and row.sm_count == env.sm_count
            and row.of_build(valid_hashes))


class ShippedTable:
    """Rows of one shipped file (``path``; None for an empty table that came from no file)."""

    def __init__(self, rows: Iterable[Row] = (), path: Path | None = None, provenance: Mapping | None = None):
        self.rows = tuple(dataclasses.replace(r, source="shipped", stale=False, winner=False) for r in rows)
        self.path = path
        self.provenance = dict(provenance or {})
        self.parts: tuple[ShippedTable, ...] = (self,)  # the files it was read from (see merged)
        self._by_key: dict[str, list[Row]] = {}
        for r in self.rows:
            self._by_key.setdefault(r.problem_key, []).append(r)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def merged(cls, parts: Iterable[ShippedTable]) -> ShippedTable:
        """One table of the rows of ``parts`` (the package's files); ``parts`` keeps each file's
        path and provenance, ``path`` and ``provenance`` are those of a single part."""
        parts = tuple(parts)
        if len(parts) == 1:
            return parts[0]
        table = cls((r for p in parts for r in p.rows))
        table.parts = parts
        return table

    def current(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str]) -> list[Row]:
        """The rows of ``problem_key`` that describe a kernel that would run here (:func:`matches`)."""
        return [r for r in self._by_key.get(str(problem_key), ()) if matches(r, env, valid_hashes)]

    def best(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str],
             shape: str | None = None) -> Row | None:
        """The winning matching row for ``problem_key`` and a problem of ``shape``, or None."""
        return pick_winner(self.current(problem_key, env, valid_hashes), shape)

    def lent(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str]) -> list[Row]:
        """The rows :meth:`borrowed` picks from: those for ``problem_key`` of the GPU nearest this one
        (:func:`nearest_gpu`) among rows of other GPUs that describe a variant as built now (its hash
        in ``valid_hashes``) whose binary runs on one architecture only (:func:`same_architecture_only`)."""
        here = (env.gpu_name, env.sm_count)
        rows = [r for r in self._by_key.get(str(problem_key), ())
                if (r.gpu_name, r.sm_count) != here and r.of_build(valid_hashes)
                and same_architecture_only(r.variant)]
        gpu = nearest_gpu(here, {(r.gpu_name, r.sm_count) for r in rows})
        return [r for r in rows if (r.gpu_name, r.sm_count) == gpu] if gpu else []

    def borrowed(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str],
                 shape: str | None = None) -> Row | None:
        """The winning row for ``problem_key`` (and ``shape``) of the nearest other GPU (:meth:`lent`),
        or None. Dispatch asks it only where :meth:`best` finds no row of this GPU (module docstring)."""
        return pick_winner(self.lent(problem_key, env, valid_hashes), shape)

    def display_rows(
        self,
        problem_key: ProblemKey | str | None = None,
        variant_glob: str | None = None,
        env: Environment | None = None,
        valid_hashes: Mapping[str, str] | None = None,
        include_stale: bool = False,
    ) -> list[Row]:
        """Rows for `flashcore table`, flagged like :meth:`TuningTable.rows` (unsorted).

        ``winner`` marks the fastest current row of each measured shape of a key, regardless of the
        user's table (the caller clears it where a tuned row of that shape takes precedence); where
        no row of this GPU is current, the fastest row of each shape :meth:`lent` offers is shown
        current, as a winner, with source "borrowed". Without ``env`` no row is stale by device,
        without ``valid_hashes`` none is stale by hash (and none is borrowed)."""
        def is_stale(r: Row) -> bool:
            if env is not None and (r.gpu_name, r.sm_count) != (env.gpu_name, env.sm_count):
                return True
            return valid_hashes is not None and not r.of_build(valid_hashes)

        keys = [str(problem_key)] if problem_key is not None else list(self._by_key)
        out = []
        for key in keys:
            rows = self._by_key.get(key, ())
            marked = [dataclasses.replace(r, stale=is_stale(r)) for r in rows]
            winners = shape_winners(r for r in marked if not r.stale)
            if not winners and env is not None and valid_hashes is not None:
                lent = {id(r) for r in shape_winners(self.lent(key, env, valid_hashes))}
                marked = [dataclasses.replace(m, stale=False, source="borrowed") if id(r) in lent else m
                          for r, m in zip(rows, marked)]
                winners = [m for m in marked if m.source == "borrowed"]
            won = {id(w) for w in winners}
            out += [dataclasses.replace(r, winner=id(r) in won) for r in marked
                    if (include_stale or not r.stale) and (variant_glob is None or fnmatchcase(r.variant, variant_glob))]
        return out


# -- reading ---------------------------------------------------------------------------

def load(path: str | Path) -> ShippedTable:
    """The table in ``path``: empty when the file is missing or empty; raises
    :class:`ShippedTableError` for anything that is not the shipped format."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ShippedTable(path=path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ShippedTableError(f"cannot read it ({exc})") from exc
    if not text.strip():
        return ShippedTable(path=path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShippedTableError(f"not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ShippedTableError(f'not a shipped tuning table (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise ShippedTableError(f"format version {data.get('version')!r}, this flashcore reads version {VERSION} "
                                "(upgrade flashcore-cutlass or re-export the table)")
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise ShippedTableError('"rows" is not a list')
    provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
    return ShippedTable((_row(r, i) for i, r in enumerate(rows)), path=path, provenance=provenance)


def _row(entry, index: int) -> Row:
    if not isinstance(entry, dict):
        raise ShippedTableError(f"row {index} is not an object")
    fields = {}
    for name, kind in REQUIRED.items():
        if name not in entry:
            raise ShippedTableError(f"row {index} has no {name!r}")
        fields[name] = _typed(entry[name], kind, index, name)
    for name, (kind, default) in OPTIONAL.items():
        fields[name] = _typed(entry[name], kind, index, name) if name in entry else default
    if not math.isfinite(fields["median_us"]) or fields["median_us"] <= 0:
        raise ShippedTableError(f"row {index}: median_us must be a positive number, got {entry['median_us']!r}")
    return Row(**fields, source="shipped")


def _typed(value, kind: type, index: int, name: str):
    # bool is an int to Python but never a valid count or time here.
    ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
    if not ok:
        raise ShippedTableError(f"row {index}: {name} must be {kind.__name__}, got {value!r}")
    return kind(value)


def package_paths() -> tuple[Path, ...]:
    """The package's shipped files (``data/tuned_*.json``), in name order."""
    return tuple(sorted(DATA_DIR.glob(FILE_PATTERN)))


def default_paths() -> tuple[Path, ...]:
    """The files dispatch reads: ``$FLASHCORE_SHIPPED_TABLE`` alone, else the package's; none
    when "off"."""
    chosen = os.environ.get(PATH_VARIABLE, "")
    if chosen.lower() == "off":
        return ()
    return (Path(chosen).expanduser(),) if chosen else package_paths()


def default_table() -> ShippedTable:
    """The rows of :func:`default_paths`' files as one table, each file read once per process;
    a damaged file warns once and reads as empty (dispatch must never fail over it)."""
    paths = default_paths()
    return ShippedTable.merged(_load_once(str(p)) for p in paths) if paths else ShippedTable()


def file_name_for(gpu_name: str) -> str:
    """The package file for a GPU's rows, named for its model: "NVIDIA H200" -> "tuned_h200.json",
    "NVIDIA H100 80GB HBM3" -> "tuned_h100.json" (two boards of one model share a file: rows
    match on the full name and SM count, whatever file holds them)."""
    words = gpu_name.split()
    if words and words[0].lower() == "nvidia":
        words = words[1:]
    model = re.sub(r"[^a-z0-9]", "", words[0].lower()) if words else ""
    return f"tuned_{model or 'gpu'}.json"


@functools.lru_cache(maxsize=None)
def _load_once(path: str) -> ShippedTable:
    try:
        return load(path)
    except ShippedTableError as exc:
        _warn(f"flashcore: ignoring the shipped tuning table {path}: {exc}")
        return ShippedTable(path=Path(path))


def _warn(message: str) -> None:
    # Attribute the warning to the first caller outside flashcore_cutlass (the user's call of
    # attention(), not the registry), whatever the depth of the dispatch that read the file.
    package = str(Path(__file__).resolve().parent)
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, TableWarning, stacklevel=level)


# -- writing ---------------------------------------------------------------------------

def export(rows: Iterable[Row], path: str | Path, provenance: Mapping | None = None) -> Path:
    """Write ``rows`` (the winners to ship) to ``path`` in the shipped format, atomically.
    ``provenance`` defaults to :func:`current_provenance`."""
    path = Path(path)
    ordered = sorted(rows, key=lambda r: (r.problem_key, r.shape, r.gpu_name, r.sm_count, r.variant))
    header = {"format": FORMAT, "version": VERSION,
              "provenance": dict(provenance if provenance is not None else current_provenance())}
    lines = [json.dumps({name: getattr(r, name) for name in ROW_FIELDS}) for r in ordered]
    head = json.dumps(header, indent=1)[:-2]  # without the closing "\n}": "rows" follows
    body = ",\n  ".join(lines)
    text = f'{head},\n "rows": [\n  {body}\n ]\n}}\n' if lines else f'{head},\n "rows": []\n}}\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def current_provenance() -> dict:
    """Where an export comes from: the commit, the time, flashcore's and cuDNN's versions (the
    tuning table does not record cuDNN; the exporting process is the tuning machine), and the
    toolchain part of the rows' source hashes (nvcc's version, the CUTLASS headers' digest), so
    that a machine with the same toolchain can re-derive every row's hash from the sources."""
    from flashcore_codegen import toolchain

    from . import __version__

    return {"commit": _git_commit(), "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "flashcore": __version__, "cudnn": _cudnn_version(), "toolchain": toolchain.identity()}


def _git_commit() -> str:
    """$FLASHCORE_COMMIT when set (a device run's copy of the tree may carry a stale .git), else
    git's HEAD (+ "-dirty"), else "unknown"."""
    pinned = os.environ.get("FLASHCORE_COMMIT", "")
    if pinned and pinned != "unknown":
        return pinned
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=here, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cudnn_version() -> str:
    try:
        import torch

        return str(torch.backends.cudnn.version())
    except Exception:  # no torch, or a build without cuDNN
        return "unknown"
