"""The tuning table: measured benchmark results, the only thing dispatch trusts.

One SQLite file (WAL mode, so a benchmark run can write while other processes read) with
one row per (variant, problem key, environment, source hash); recording the same identity
again replaces the row. A row is *stale* when its environment differs from the current one
or its source hash is not the hash of the variant as built now: the measurement then says
nothing about the kernel that would run, so :meth:`TuningTable.best` never returns it.
Stale rows are kept (not deleted) so that switching back to an environment or source
revives them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterator, Mapping

from .env import Environment
from .paths import cache_dir
from .problem import ProblemKey

ENV_COLUMNS = tuple(f.name for f in dataclasses.fields(Environment))
IDENTITY_COLUMNS = ("variant", "problem_key", *ENV_COLUMNS, "source_hash")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS results (
    variant     TEXT    NOT NULL,
    problem_key TEXT    NOT NULL,
    shape       TEXT    NOT NULL,
    median_us   REAL    NOT NULL,
    spread_us   REAL    NOT NULL,
    tflops      REAL    NOT NULL,
    samples     INTEGER NOT NULL,
    max_abs_err REAL    NOT NULL,
    gpu_name    TEXT    NOT NULL,
    sm_count    INTEGER NOT NULL,
    cuda        TEXT    NOT NULL,
    torch       TEXT    NOT NULL,
    cutlass     TEXT    NOT NULL,
    source_hash TEXT    NOT NULL,
    measured_at TEXT    NOT NULL,
    PRIMARY KEY ({", ".join(IDENTITY_COLUMNS)})
);
CREATE INDEX IF NOT EXISTS results_by_key ON results (problem_key, median_us);
"""


def default_table_path() -> Path:
    return cache_dir() / "tuning.db"


@dataclass(frozen=True)
class Row:
    variant: str
    problem_key: str
    shape: str  # the exact problem measured, e.g. "B4 H16 Sq4096 Sk4096"
    median_us: float
    spread_us: float  # dispersion of the samples (e.g. IQR)
    tflops: float
    samples: int
    max_abs_err: float
    gpu_name: str
    sm_count: int
    cuda: str
    torch: str
    cutlass: str
    source_hash: str
    measured_at: str  # ISO 8601, UTC
    # Display-only flags, filled in by TuningTable.rows().
    stale: bool = False
    winner: bool = False

    @property
    def env(self) -> Environment:
        return Environment(**{c: getattr(self, c) for c in ENV_COLUMNS})


SORT_FIELDS = frozenset(f.name for f in dataclasses.fields(Row))


class TuningTable:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_table_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # WAL is a property of the file: set once, every later connection uses it.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: no state shared between threads or across fork, and
        # the timeout waits out another process's write instead of failing with "locked".
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.row_factory = sqlite3.Row
        # Same glob semantics as `flashcore build --only` (fnmatch), not SQLite's GLOB.
        conn.create_function("fnmatch", 2, fnmatchcase, deterministic=True)
        try:
            with conn:  # commit on success, roll back on error
                yield conn
        finally:
            conn.close()

    # -- writing --------------------------------------------------------------------
    def record(
        self,
        variant: str,
        problem_key: ProblemKey | str,
        *,
        shape: str,
        median_us: float,
        spread_us: float,
        tflops: float,
        samples: int,
        max_abs_err: float,
        env: Environment,
        source_hash: str,
        measured_at: str | None = None,
    ) -> Row:
        """Store one measurement, replacing any earlier one with the same identity."""
        row = Row(
            variant=variant,
            problem_key=str(problem_key),
            shape=shape,
            median_us=float(median_us),
            spread_us=float(spread_us),
            tflops=float(tflops),
            samples=int(samples),
            max_abs_err=float(max_abs_err),
            **env.as_dict(),
            source_hash=source_hash,
            measured_at=measured_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        values = {k: v for k, v in dataclasses.asdict(row).items() if k not in ("stale", "winner")}
        columns = ", ".join(values)
        placeholders = ", ".join(f":{c}" for c in values)
        with self._connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO results ({columns}) VALUES ({placeholders})", values)
        return row

    def clear(self, problem_key: ProblemKey | str | None = None, variant_glob: str | None = None) -> int:
        """Delete rows (all of them when no filter is given); returns how many."""
        where, params = _filters(problem_key, variant_glob)
        with self._connect() as conn:
            return conn.execute(f"DELETE FROM results{where}", params).rowcount

    # -- reading --------------------------------------------------------------------
    def best(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str]) -> Row | None:
        """The fastest non-stale row for ``problem_key``, or None.

        ``valid_hashes`` maps each built variant to its current source hash; rows of other
        variants or other hashes, and rows measured in another environment, are ignored.
        """
        env_match = " AND ".join(f"{c} = :{c}" for c in ENV_COLUMNS)
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT * FROM results WHERE problem_key = :problem_key AND {env_match}"
                " ORDER BY median_us, variant",
                {"problem_key": str(problem_key), **env.as_dict()},
            ).fetchall()
        for r in found:
            if valid_hashes.get(r["variant"]) == r["source_hash"]:
                return Row(**dict(r))
        return None

    def rows(
        self,
        problem_key: ProblemKey | str | None = None,
        variant_glob: str | None = None,
        env: Environment | None = None,
        valid_hashes: Mapping[str, str] | None = None,
        include_stale: bool = False,
        sort: str = "median_us",
    ) -> list[Row]:
        """Rows for display, with ``stale`` and ``winner`` filled in.

        Staleness is judged only against what is given: without ``env`` no row is stale by
        environment, without ``valid_hashes`` none is stale by hash. ``winner`` marks the
        fastest non-stale row of each key, the one :meth:`best` would return, even when
        ``variant_glob`` hides other rows. ``sort`` is a Row field, "-field" for descending.
        """
        field = sort.removeprefix("-")
        if field not in SORT_FIELDS:
            raise ValueError(f"cannot sort by {sort!r}; fields: {sorted(SORT_FIELDS)}")
        # Winners are decided over every row of the key, so select without the glob here.
        where, params = _filters(problem_key, None)
        with self._connect() as conn:
            found = [Row(**dict(r)) for r in conn.execute(f"SELECT * FROM results{where}", params)]

        def is_stale(r: Row) -> bool:
            if env is not None and r.env != env:
                return True
            return valid_hashes is not None and valid_hashes.get(r.variant) != r.source_hash

        marked = [dataclasses.replace(r, stale=is_stale(r)) for r in found]
        winners: dict[str, Row] = {}
        for r in sorted(marked, key=lambda r: (r.median_us, r.variant)):
            if not r.stale:
                winners.setdefault(r.problem_key, r)
        winner_ids = {id(r) for r in winners.values()}
        out = [
            dataclasses.replace(r, winner=id(r) in winner_ids)
            for r in marked
            if (include_stale or not r.stale) and (variant_glob is None or fnmatchcase(r.variant, variant_glob))
        ]
        # Stable sorts: by key and variant first so equal sort values list deterministically.
        out.sort(key=lambda r: (r.problem_key, r.variant))
        out.sort(key=lambda r: getattr(r, field), reverse=sort.startswith("-"))
        return out


def _filters(problem_key: ProblemKey | str | None, variant_glob: str | None) -> tuple[str, dict]:
    clauses, params = [], {}
    if problem_key is not None:
        clauses.append("problem_key = :problem_key")
        params["problem_key"] = str(problem_key)
    if variant_glob is not None:
        clauses.append("fnmatch(variant, :glob)")
        params["glob"] = variant_glob
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
