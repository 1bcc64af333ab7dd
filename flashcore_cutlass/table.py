"""The tuning table: measured benchmark results, the only thing dispatch trusts.

One SQLite file (WAL mode, so a benchmark run can write while other processes read) with
one row per (variant, problem key, exact shape, environment, source hash); recording the same
identity again replaces the row. A row is *stale* when its environment differs from the current
one or its source hash is not the hash of the variant as built now: the measurement then says
nothing about the kernel that would run, so :meth:`TuningTable.best` never returns it.
Stale rows are kept (not deleted) so that switching back to an environment or source
revives them. A variant the tuner rejects loses its rows (:meth:`TuningTable.forget`).

**Winners within a key.** A key covers many exact shapes (Sq, Sk and B*H are rounded up to
powers of two), and each row records the exact shape it was measured on: tuning a second shape
of a key adds that shape's rows beside the first's. Times of different shapes are never
compared: a shape's winner is its fastest current row (``rows()`` flags one per shape as
``winner``). Which shape's winner serves a problem (:func:`pick_winner`): the shape nearest the
problem's (:func:`~flashcore_cutlass.problem.shape_distance`: B*H, Sq and Sk ratios), then the
shape with the most current variants measured on it, then the one measured most recently (latest
``measured_at``), then the smallest shape text; without a problem's shape, the same without the
first rule (the key's *reference shape*). Few-CTA problems change winner inside a key (decoding
over 8k keys: a cluster of 4 wins at B6 and runs 1.6x slower than clusters of 2 at B8), so a
measured shape keeps its own winner.

**Damaged or unusable files.** Opening never raises. A file that is not a database, is
truncated or fails SQLite's ``quick_check`` is renamed to ``tuning.db.corrupt-<UTC time>``
(its ``-wal`` and ``-journal`` files with it, ``-shm`` removed), with one
:class:`TableWarning` naming both paths, and a fresh table is made. A table that cannot
be written (read-only file, directory or file system) is opened read-only: reading works,
writing raises :class:`TableError`. Where the path cannot be used at all (the cache
directory is a file, a directory sits at the table's path, a corrupt file cannot be moved)
every operation raises :class:`TableError`, whose message says what to change; dispatch
catches it and falls back to its heuristic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import sys
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

try:  # POSIX only: elsewhere corrupt files are moved without the lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from .env import Environment
from .paths import cache_dir
from .problem import ProblemKey, shape_distance

ENV_COLUMNS = tuple(f.name for f in dataclasses.fields(Environment))
IDENTITY_COLUMNS = ("variant", "problem_key", "shape", *ENV_COLUMNS, "source_hash")
BUSY_TIMEOUT_S = 30.0  # how long an operation waits out another process's write
SIDE_SUFFIXES = ("-wal", "-journal")  # belong to the main file: moved with it
FIX_HINT = "set FLASHCORE_CACHE_DIR to a writable directory (e.g. FLASHCORE_CACHE_DIR=/tmp/flashcore)"

_CREATE_TABLE = f"""
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
)"""
_CREATE_INDEX = "CREATE INDEX IF NOT EXISTS results_by_key ON results (problem_key, median_us)"
_SCHEMA = f"{_CREATE_TABLE};\n{_CREATE_INDEX};\n"



class TableError(RuntimeError):
    """The tuning table cannot be used as asked; the message says why and how to fix it."""


class TableWarning(RuntimeWarning):
    """Something was wrong with the tuning table and was worked around (e.g. moved aside)."""


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
    # Display-only flags, filled in by TuningTable.rows() (and the shipped table's rows()).
    stale: bool = False
    winner: bool = False
    source: str = "tuned"  # "tuned": this table; "shipped": the table carried in the package ("borrowed": a
    # shipped row of another GPU standing in for this one, shipped.ShippedTable.borrowed)

    @property
    def env(self) -> Environment:
        return Environment(**{c: getattr(self, c) for c in ENV_COLUMNS})

    def of_build(self, valid_hashes: Mapping[str, str]) -> bool:
        """Whether the row measured the variant as built now (``valid_hashes``: built variant -> source hash)."""
        return valid_hashes.get(self.variant) == self.source_hash


DISPLAY_FIELDS = ("stale", "winner", "source")  # not stored: derived when rows are read
SORT_FIELDS = frozenset(f.name for f in dataclasses.fields(Row))
# Names rows(sort=...) accepts: every Row field, and the headers `flashcore table` prints.
SORT_ALIASES: dict[str, str] = {
    **{name: name for name in SORT_FIELDS},
    "key": "problem_key",
    "TFLOP/s": "tflops",
    "max_err": "max_abs_err",
    "win": "winner",
    "gpu": "gpu_name",
}


def sort_field(sort: str) -> tuple[str, bool]:
    """(Row field, descending) for a sort name such as "median_us", "-TFLOP/s" or "key".

    Raises ValueError naming the accepted names for anything else.
    """
    name = sort[1:] if sort.startswith("-") else sort
    field = SORT_ALIASES.get(name) or {k.lower(): v for k, v in SORT_ALIASES.items()}.get(name.lower())
    if field is None:
        raise ValueError(f"cannot sort by {sort!r}; accepted: {', '.join(sorted(SORT_ALIASES))} "
                         "(prefix - for descending)")
    return field, sort.startswith("-")


def sort_rows(rows: Iterable[Row], sort: str) -> list[Row]:
    """``rows`` sorted by a name of :data:`SORT_ALIASES` (see :func:`sort_field`)."""
    field, descending = sort_field(sort)
    out = list(rows)
    # Stable sorts: by key, shape, variant and source first so equal sort values list deterministically.
    out.sort(key=lambda r: (r.problem_key, r.shape, r.variant, r.source))
    out.sort(key=lambda r: getattr(r, field), reverse=descending)
    return out


def _shape_order(by_shape: Mapping[str, list[Row]]) -> list[str]:
    """The shapes of one key's rows, the reference shape first: most variants measured, then
    the most recent measurement, then the text."""
    # Stable sorts, last key first.
    shapes = sorted(by_shape)
    shapes.sort(key=lambda s: max(r.measured_at for r in by_shape[s]), reverse=True)
    shapes.sort(key=lambda s: len(by_shape[s]), reverse=True)
    return shapes


def _fastest(rows: Iterable[Row]) -> Row:
    return min(rows, key=lambda r: (r.median_us, r.variant))


def pick_nearest(sources: Iterable[Iterable[Row]], shape: str | None = None) -> tuple[int, Row] | None:
    """(index of the source, row): the winner among current rows of one key held by several
    tables in order of precedence (the user's, then the shipped one): of all their measured
    shapes the one nearest ``shape`` (:func:`shape_distance`; None: every shape equally near),
    then the earlier source, then the source's own order (:func:`_shape_order`); that shape's
    fastest row. None when no source has a row."""
    best = None
    for index, rows in enumerate(sources):
        by_shape: dict[str, list[Row]] = {}
        for r in rows:
            by_shape.setdefault(r.shape, []).append(r)
        for order, s in enumerate(_shape_order(by_shape)):
            rank = (0.0 if shape is None else shape_distance(s, shape), index, order)
            if best is None or rank < best[0]:
                best = (rank, index, by_shape[s])
    return None if best is None else (best[1], _fastest(best[2]))


def pick_winner(rows: Iterable[Row], shape: str | None = None) -> Row | None:
    """The winner among current rows of one key for a problem of ``shape`` (see the module
    docstring; None: the key's reference shape), or None."""
    found = pick_nearest([rows], shape)
    return None if found is None else found[1]


def shape_winners(rows: Iterable[Row]) -> list[Row]:
    """The fastest row of each (key, shape) among ``rows``: what dispatch takes for that shape."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.problem_key, r.shape), []).append(r)
    return [_fastest(g) for g in groups.values()]


class TuningTable:
    """The table at ``path`` (default: ``$FLASHCORE_CACHE_DIR/tuning.db``).

    ``mode`` is "rw", "ro" (read-only file or directory) or "immutable" (read-only and no
    WAL index can be created, e.g. a read-only file system: uncheckpointed WAL contents are
    not seen), or None while the table cannot be used; ``error`` then holds the
    :class:`TableError` that every operation raises (each one retries opening first).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_table_path()
        self.mode: str | None = None
        self.error: TableError | None = None
        self._has_schema = True
        with contextlib.suppress(TableError):  # kept in self.error, raised by each operation
            self._ensure_open()

    @property
    def writable(self) -> bool:
        return self.mode == "rw"

    def check(self, write: bool = False) -> None:
        """Raise :class:`TableError` unless the table can be read (and written, with ``write``):
        lets a long job (tuning) fail before its work rather than at its first record."""
        self._ensure_open()
        if write and self.mode != "rw":
            raise self._read_only_error()

    # -- opening --------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if self.mode is not None:
            return
        try:
            self.mode = self._open()
            self.error = None
        except TableError as exc:
            self.error = exc
            raise

    def _open(self) -> str:
        self._check_location()
        try:
            self._init_writable()
            self._has_schema = True
            return "rw"
        except sqlite3.DatabaseError as exc:
            if not _is_read_only(exc):
                raise TableError(f"cannot open the tuning table {self.path}: {exc}; {FIX_HINT}") from exc
        return self._open_read_only()

    def _check_location(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise TableError(f"cannot create the cache directory {parent} ({exc.strerror}); {FIX_HINT}") from exc
        except (FileExistsError, NotADirectoryError) as exc:
            raise TableError(f"cannot use {parent} as the cache directory: a regular file is in the way "
                             f"({exc.filename}); remove it or {FIX_HINT}") from exc
        except OSError as exc:
            raise TableError(f"cannot create the cache directory {parent} ({exc}); {FIX_HINT}") from exc
        if self.path.is_dir():
            raise TableError(f"the tuning table path {self.path} is a directory, not a database file; "
                             f"remove or rename it, or {FIX_HINT}")

    def _init_writable(self) -> None:
        """Open read-write, creating the schema; a corrupt file is moved aside once."""
        for attempt in range(2):
            try:
                with contextlib.closing(self._raw_connect("rw")) as conn:
                    _ensure_schema(conn)
                    _quick_check(conn)
                    _probe_write(conn)
                return
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc) or attempt:
                    raise
                self._move_aside_if_corrupt(exc)

    def _open_read_only(self) -> str:
        if not self.path.exists():
            raise TableError(f"no tuning table at {self.path}, and none can be created there "
                             f"(read-only); {FIX_HINT}")
        last: sqlite3.DatabaseError | None = None
        for mode in ("ro", "immutable"):  # immutable: when not even the WAL index can be made
            try:
                with contextlib.closing(self._raw_connect(mode)) as conn:
                    self._has_schema = _has_results(conn)
                    _quick_check(conn)
                return mode
            except sqlite3.DatabaseError as exc:
                if _is_corrupt(exc):
                    if self._move_aside_if_corrupt(exc):
                        return self._open()  # moved: the directory is writable after all
                    raise TableError(f"the tuning table {self.path} is corrupt ({exc}); delete it, "
                                     f"or {FIX_HINT}") from exc
                last = exc
        raise TableError(f"cannot read the tuning table {self.path}: {last}; {FIX_HINT}") from last

    def _raw_connect(self, mode: str) -> sqlite3.Connection:
        if mode == "rw":
            # IMMEDIATE: a write transaction takes the write lock up front (through the busy
            # timeout) instead of failing on a read-to-write upgrade.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level="IMMEDIATE")
        else:
            query = "mode=ro" if mode == "ro" else "immutable=1"
            uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?{query}"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        # Same glob semantics as `flashcore build --only` (fnmatch), not SQLite's GLOB.
        conn.create_function("fnmatch", 2, fnmatchcase, deterministic=True)
        return conn

    def _move_aside_if_corrupt(self, exc: sqlite3.DatabaseError) -> bool:
        """Rename the corrupt file (and its side files), under a lock on the directory and
        only if it is still corrupt: a process that saw the old file must not move the
        fresh one another process has just made. False when there was nothing to move."""
        with _directory_lock(self.path.parent):
            if not self.path.exists() or _corruption(self.path) is None:
                return False  # another process moved it already
            dest = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp()}")
            try:
                os.replace(self.path, dest)
                for suffix in SIDE_SUFFIXES:
                    side = Path(f"{self.path}{suffix}")
                    if side.exists():
                        os.replace(side, f"{dest}{suffix}")
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{self.path}-shm")  # an index of the old WAL: meaningless now
            except OSError as move_exc:
                raise TableError(f"the tuning table {self.path} is corrupt ({exc}) and cannot be moved aside "
                                 f"({move_exc.strerror}); delete it, or {FIX_HINT}") from exc
        _warn(f"the tuning table {self.path} was corrupt ({exc}); moved it to {dest} and started an empty one")
        return True

    # -- connections ----------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        # A connection per operation: no state shared between threads or across fork, and
        # the timeout waits out another process's write instead of failing with "locked".
        self._ensure_open()
        if write and self.mode != "rw":
            raise self._read_only_error()
        conn = self._raw_connect(self.mode)
        try:
            with conn:  # commit on success, roll back on error
                yield conn
        except sqlite3.DatabaseError as exc:
            raise self._operation_error(exc) from exc
        finally:
            conn.close()

    def _operation_error(self, exc: sqlite3.DatabaseError) -> TableError:
        if _is_corrupt(exc):
            self.mode = None  # the next operation reopens, which moves the file aside
            return TableError(f"the tuning table {self.path} is corrupt ({exc}); it is moved aside "
                              "when next opened")
        if _is_read_only(exc):
            self.mode = None  # reopen read-only next time
            return self._read_only_error(exc)
        return TableError(f"tuning table {self.path}: {exc}")

    def _read_only_error(self, cause: Exception | None = None) -> TableError:
        why = f" ({cause})" if cause else ""
        return TableError(f"the tuning table {self.path} is read-only{why}: make it and its directory "
                          f"writable, or {FIX_HINT}")

    def _select(self, sql: str, params: Mapping) -> list[Row]:
        with self._connect() as conn:
            if not self._has_schema:
                return []  # a valid but empty database, read-only so the schema cannot be made
            return [Row(**dict(r)) for r in conn.execute(sql, params)]

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
        values = {k: v for k, v in dataclasses.asdict(row).items() if k not in DISPLAY_FIELDS}
        columns = ", ".join(values)
        placeholders = ", ".join(f":{c}" for c in values)
        with self._connect(write=True) as conn:
            conn.execute(f"INSERT OR REPLACE INTO results ({columns}) VALUES ({placeholders})", values)
        return row

    def forget(self, variant: str, problem_key: ProblemKey | str, env: Environment, source_hash: str) -> int:
        """Delete the rows of ``variant`` for ``problem_key`` measured in ``env`` against
        ``source_hash`` (any shape); returns how many. The tuner calls it for a candidate it
        rejects, so an older passing measurement of the same build cannot keep winning."""
        env_match = " AND ".join(f"{c} = :{c}" for c in ENV_COLUMNS)
        params = {"variant": variant, "problem_key": str(problem_key), "source_hash": source_hash, **env.as_dict()}
        with self._connect(write=True) as conn:
            return conn.execute(
                f"DELETE FROM results WHERE variant = :variant AND problem_key = :problem_key"
                f" AND source_hash = :source_hash AND {env_match}", params).rowcount

    def clear(self, problem_key: ProblemKey | str | None = None, variant_glob: str | None = None) -> int:
        """Delete rows (all of them when no filter is given); returns how many."""
        where, params = _filters(problem_key, variant_glob)
        with self._connect(write=True) as conn:
            return conn.execute(f"DELETE FROM results{where}", params).rowcount

    # -- reading --------------------------------------------------------------------
    def best(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str],
             shape: str | None = None) -> Row | None:
        """The winning current row for ``problem_key`` and a problem of ``shape`` (see the module
        docstring), or None.

        ``valid_hashes`` maps each built variant to its current source hash; rows of other
        variants or other hashes, and rows measured in another environment, are ignored.
        """
        return pick_winner(self.current(problem_key, env, valid_hashes), shape)

    def current(self, problem_key: ProblemKey | str, env: Environment, valid_hashes: Mapping[str, str]) -> list[Row]:
        """The rows of ``problem_key`` measured in ``env`` against the hashes in ``valid_hashes``."""
        env_match = " AND ".join(f"{c} = :{c}" for c in ENV_COLUMNS)
        found = self._select(f"SELECT * FROM results WHERE problem_key = :problem_key AND {env_match}",
                             {"problem_key": str(problem_key), **env.as_dict()})
        return [r for r in found if r.of_build(valid_hashes)]

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
        fastest current row of each measured shape of each key (what dispatch takes for a problem
        of that shape), even when ``variant_glob`` hides other rows. ``sort`` is a name of
        :data:`SORT_ALIASES` (a Row field or a `flashcore table` header), "-name" for descending;
        anything else raises ValueError.
        """
        sort_field(sort)  # an unknown name fails before the query
        # Winners are decided over every row of the key, so select without the glob here.
        where, params = _filters(problem_key, None)
        found = self._select(f"SELECT * FROM results{where}", params)

        def is_stale(r: Row) -> bool:
            if env is not None and r.env != env:
                return True
            return valid_hashes is not None and not r.of_build(valid_hashes)

        marked = [dataclasses.replace(r, stale=is_stale(r)) for r in found]
        winner_ids = {id(w) for w in _winners(marked)}
        out = [
            dataclasses.replace(r, winner=id(r) in winner_ids)
            for r in marked
            if (include_stale or not r.stale) and (variant_glob is None or fnmatchcase(r.variant, variant_glob))
        ]
        return sort_rows(out, sort)


def _winners(rows: list[Row]) -> list[Row]:
    return shape_winners(r for r in rows if not r.stale)


def _filters(problem_key: ProblemKey | str | None, variant_glob: str | None) -> tuple[str, dict]:
    clauses, params = [], {}
    if problem_key is not None:
        clauses.append("problem_key = :problem_key")
        params["problem_key"] = str(problem_key)
    if variant_glob is not None:
        clauses.append("fnmatch(variant, :glob)")
        params["glob"] = variant_glob
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


# -- SQLite helpers ------------------------------------------------------------------

def _error_name(exc: sqlite3.Error) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""  # Python >= 3.11; messages otherwise


def _is_corrupt(exc: sqlite3.Error) -> bool:
    name, text = _error_name(exc), str(exc).lower()
    return (name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
            or "file is not a database" in text or "malformed" in text or "quick_check" in text)


def _is_read_only(exc: sqlite3.Error) -> bool:
    name, text = _error_name(exc), str(exc).lower()
    return (name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"))
            or "readonly" in text or "read-only" in text or "unable to open database file" in text)


def _is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


def _has_results(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone() is not None


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """WAL and the schema, safe when several processes open a new file at once."""
    # Read first: an existing table needs no write lock (and a read-only one allows none).
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        # Switching needs an exclusive lock and may just return the old mode while another
        # process holds one, so retry. WAL is a property of the file: set once.
        _retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal")
    if not _has_results(conn):
        _retry(lambda: conn.executescript(_SCHEMA) or True)
    if set(_primary_key(conn)) != set(IDENTITY_COLUMNS):
        _retry(lambda: _migrate(conn))


def _primary_key(conn: sqlite3.Connection) -> list[str]:
    return [c["name"] for c in conn.execute("PRAGMA table_info(results)") if c["pk"]]


def _migrate(conn: sqlite3.Connection) -> bool:
    """Move the rows of a table made before the exact shape joined the row identity into one
    whose identity has it, in one write transaction (a second process finds it done)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if set(_primary_key(conn)) != set(IDENTITY_COLUMNS):
            columns = ", ".join(c["name"] for c in conn.execute("PRAGMA table_info(results)"))
            conn.execute("ALTER TABLE results RENAME TO results_before_shape_identity")
            conn.execute("DROP INDEX IF EXISTS results_by_key")
            conn.execute(_CREATE_TABLE)
            conn.execute(_CREATE_INDEX)
            conn.execute(f"INSERT INTO results ({columns}) SELECT {columns} FROM results_before_shape_identity")
            conn.execute("DROP TABLE results_before_shape_identity")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def _retry(step: Callable[[], bool], deadline_s: float = BUSY_TIMEOUT_S) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            if step():
                return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > end:
                raise
        if time.monotonic() > end:
            return  # still not WAL: the rollback journal is slower for readers, not wrong
        time.sleep(0.01)


def _probe_write(conn: sqlite3.Connection) -> None:
    # A read-only file opens (and even begins a transaction) without complaint: only an
    # actual write statement says so. This one changes nothing and is rolled back.
    try:
        conn.execute("DELETE FROM results WHERE 0")
    finally:
        conn.rollback()


def _quick_check(conn: sqlite3.Connection) -> None:
    # Catches truncation and damaged pages at open, not in the middle of a dispatch.
    found = [r[0] for r in conn.execute("PRAGMA quick_check")]
    if found != ["ok"]:
        raise sqlite3.DatabaseError(f"quick_check failed: {'; '.join(found[:3])}")


def _corruption(path: Path) -> sqlite3.DatabaseError | None:
    """The error that shows ``path`` is corrupt, or None when it reads fine now."""
    for query in ("mode=ro", "immutable=1"):  # immutable: where no WAL index can be made
        try:
            uri = f"file:{urllib.parse.quote(str(path.absolute()))}?{query}"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)) as conn:
                conn.execute("PRAGMA journal_mode").fetchone()
                _quick_check(conn)
            return None
        except sqlite3.DatabaseError as exc:
            if _is_corrupt(exc):
                return exc
    return None


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file left behind)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _warn(message: str) -> None:
    # Attribute the warning to the first caller outside this module (the depth varies).
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called _warn
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, TableWarning, stacklevel=level)


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
