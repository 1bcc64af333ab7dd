import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from flashcore_cutlass import env as env_module
from flashcore_cutlass.env import Environment
from flashcore_cutlass.paths import cache_dir
from flashcore_cutlass.problem import ProblemKey
from flashcore_cutlass import table as table_module
from flashcore_cutlass.table import (
    SORT_ALIASES, Row, TableError, TableWarning, TuningTable, default_table_path, pick_winner, sort_field,
)

ENV = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
OTHER_ENV = Environment("NVIDIA H100 80GB HBM3", 114, "12.8", "2.8.0", "4.2.0.0")  # e.g. the PCIe part
KEY = ProblemKey("bf16", 128, True, 4096, 4096, 64)
OTHER_KEY = ProblemKey("bf16", 128, True, 1024, 1024, 64)
A, B, C = "fc_mma_bf16_d128_causal_m128_n64_w4", "fc_mma_bf16_d128_causal_m64_n64_w4", "fc_scalar_bf16_d128_causal_m16_w4"


def record(table, variant, median, *, key=KEY, env=ENV, source_hash="h1", **kw):
    args = dict(shape="B4 H16 Sq4096 Sk4096", median_us=median, spread_us=1.5, tflops=100.0,
                samples=50, max_abs_err=1e-3, env=env, source_hash=source_hash)
    return table.record(variant, key, **(args | kw))


@pytest.fixture
def table(tmp_path):
    return TuningTable(tmp_path / "nested" / "dir" / "tuning.db")


# -- environment and paths ---------------------------------------------------------------

def test_environment_current_reads_torch_and_cutlass(monkeypatch):
    import torch

    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", multi_processor_count=132, major=9)
    seen = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: seen.append(d) or props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(env_module.importlib.metadata, "version",
                        lambda dist: {"nvidia-cutlass": "4.2.0.0"}[dist])
    got = Environment.current()
    assert seen == [3]
    assert got == Environment("NVIDIA H100 80GB HBM3", 132, "12.8", torch.__version__, "4.2.0.0")
    assert got.as_dict() == {"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "cuda": "12.8",
                             "torch": torch.__version__, "cutlass": "4.2.0.0"}
    Environment.current(device=1)
    assert seen[-1] == 1


def test_environment_cutlass_unknown_when_not_installed(monkeypatch):
    def missing(dist):
        raise env_module.importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(env_module.importlib.metadata, "version", missing)
    assert env_module._cutlass_version() == "unknown"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit"
    assert default_table_path() == tmp_path / "explicit" / "tuning.db"
    monkeypatch.delenv("FLASHCORE_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "flashcore_cutlass"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "flashcore_cutlass"


def test_default_path_used_without_argument(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "c"))
    t = TuningTable()
    assert t.path == tmp_path / "c" / "tuning.db"
    assert t.path.exists()


# -- storage -----------------------------------------------------------------------------

def test_creates_parent_directory_and_uses_wal(table):
    assert table.path.exists()
    conn = sqlite3.connect(table.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_record_then_best_returns_the_stored_row(table):
    stored = record(table, A, 250.0, measured_at="2025-01-01T00:00:00+00:00")
    got = table.best(KEY, ENV, {A: "h1"})
    assert got == stored
    assert got == Row(A, str(KEY), "B4 H16 Sq4096 Sk4096", 250.0, 1.5, 100.0, 50, 1e-3,
                      *ENV.as_dict().values(), "h1", "2025-01-01T00:00:00+00:00")
    assert got.env == ENV


def test_measured_at_defaults_to_utc_iso(table):
    row = record(table, A, 1.0)
    assert row.measured_at.endswith("+00:00") and row.measured_at[4] == "-" and "T" in row.measured_at


def test_best_picks_fastest_for_the_key(table):
    record(table, A, 300.0)
    record(table, B, 200.0)
    record(table, C, 100.0, key=OTHER_KEY)  # faster, but another key
    assert table.best(KEY, ENV, {A: "h1", B: "h1", C: "h1"}).variant == B
    assert table.best(OTHER_KEY, ENV, {A: "h1", B: "h1", C: "h1"}).variant == C
    assert table.best(ProblemKey("fp16", 64, False, 1, 1, 1), ENV, {A: "h1"}) is None


def test_best_accepts_key_as_string(table):
    record(table, A, 300.0)
    assert table.best(str(KEY), ENV, {A: "h1"}).variant == A


def test_best_ignores_other_environment(table):
    record(table, A, 300.0)
    record(table, B, 100.0, env=OTHER_ENV)
    assert table.best(KEY, ENV, {A: "h1", B: "h1"}).variant == A
    assert table.best(KEY, OTHER_ENV, {A: "h1", B: "h1"}).variant == B
    # Any single field of the identity matters, e.g. the torch version.
    newer_torch = Environment(ENV.gpu_name, ENV.sm_count, ENV.cuda, "2.9.0", ENV.cutlass)
    assert table.best(KEY, newer_torch, {A: "h1", B: "h1"}) is None


def test_best_ignores_stale_hash_and_unbuilt_variants(table):
    record(table, A, 300.0, source_hash="h1")
    record(table, B, 100.0, source_hash="old")
    record(table, C, 50.0)
    assert table.best(KEY, ENV, {A: "h1", B: "new"}).variant == A  # B's hash changed, C not built
    assert table.best(KEY, ENV, {B: "new"}) is None
    assert table.best(KEY, ENV, {}) is None


def test_upsert_replaces_same_identity(table):
    record(table, A, 300.0)
    record(table, A, 120.0, samples=7)
    rows = table.rows(include_stale=True)
    assert len(rows) == 1
    assert (rows[0].median_us, rows[0].samples) == (120.0, 7)


def test_different_hash_or_env_is_a_separate_row(table):
    record(table, A, 300.0, source_hash="h1")
    record(table, A, 200.0, source_hash="h2")
    record(table, A, 100.0, env=OTHER_ENV)
    assert sorted(r.median_us for r in table.rows(include_stale=True)) == [100.0, 200.0, 300.0]
    assert table.best(KEY, ENV, {A: "h1"}).median_us == 300.0
    assert table.best(KEY, ENV, {A: "h2"}).median_us == 200.0


def test_persists_across_instances(table):
    record(table, A, 300.0)
    assert TuningTable(table.path).best(KEY, ENV, {A: "h1"}).median_us == 300.0


# -- display -----------------------------------------------------------------------------

def test_rows_flags_stale_and_winner(table):
    record(table, A, 300.0)
    record(table, B, 200.0)
    record(table, C, 100.0, source_hash="old")  # fastest but stale by hash
    record(table, A, 50.0, env=OTHER_ENV)  # stale by environment
    record(table, B, 400.0, key=OTHER_KEY)
    hashes = {A: "h1", B: "h1", C: "new"}

    current = table.rows(env=ENV, valid_hashes=hashes)
    assert [(r.problem_key, r.variant, r.median_us, r.winner, r.stale) for r in current] == [
        (str(KEY), B, 200.0, True, False),
        (str(KEY), A, 300.0, False, False),
        (str(OTHER_KEY), B, 400.0, True, False),
    ]

    everything = table.rows(env=ENV, valid_hashes=hashes, include_stale=True)
    assert [(r.variant, r.median_us, r.stale, r.winner) for r in everything] == [
        (A, 50.0, True, False),
        (C, 100.0, True, False),
        (B, 200.0, False, True),
        (A, 300.0, False, False),
        (B, 400.0, False, True),
    ]


def test_rows_without_env_or_hashes_judges_nothing_stale(table):
    record(table, A, 300.0, source_hash="whatever")
    record(table, B, 100.0, env=OTHER_ENV)
    rows = table.rows()
    assert [(r.variant, r.stale) for r in rows] == [(B, False), (A, False)]
    assert [r.winner for r in rows] == [True, False]
    # With hashes only: A's hash is not current, B's is.
    rows = table.rows(valid_hashes={A: "h1", B: "h1"}, include_stale=True)
    assert [(r.variant, r.stale, r.winner) for r in rows] == [(B, False, True), (A, True, False)]


def test_rows_filters_by_key_and_glob_keeping_true_winner(table):
    record(table, A, 300.0)
    record(table, B, 200.0)
    record(table, C, 100.0, key=OTHER_KEY)
    assert [r.variant for r in table.rows(problem_key=OTHER_KEY)] == [C]
    only_a = table.rows(problem_key=KEY, variant_glob="*_m128_*")
    # A is listed alone but is not the winner: B (hidden by the glob) is faster.
    assert [(r.variant, r.winner) for r in only_a] == [(A, False)]
    assert [r.variant for r in table.rows(variant_glob="fc_mma_*")] == [B, A]


def test_rows_sort(table):
    record(table, A, 300.0, tflops=10.0)
    record(table, B, 200.0, tflops=30.0)
    record(table, C, 100.0, tflops=20.0)
    assert [r.variant for r in table.rows(sort="-tflops")] == [B, C, A]
    assert [r.variant for r in table.rows(sort="variant")] == sorted([A, B, C])
    with pytest.raises(ValueError, match="cannot sort"):
        table.rows(sort="nonsense")


def test_rows_sort_accepts_the_cli_headers(table):
    record(table, A, 300.0, tflops=10.0, max_abs_err=3e-3)
    record(table, B, 200.0, tflops=30.0, max_abs_err=1e-3)
    record(table, C, 100.0, key=OTHER_KEY, tflops=20.0, max_abs_err=2e-3)
    assert [r.variant for r in table.rows(sort="-TFLOP/s")] == [B, C, A]
    assert [r.variant for r in table.rows(sort="tflop/s")] == [A, C, B]  # case does not matter
    assert [r.variant for r in table.rows(sort="max_err")] == [B, C, A]
    assert [r.problem_key for r in table.rows(sort="key")] == sorted([str(KEY)] * 2 + [str(OTHER_KEY)])
    assert [r.winner for r in table.rows(sort="-win")] == [True, True, False]
    # Every header `flashcore table` prints is accepted, and maps onto a Row field.
    headers = ["key", "shape", "variant", "median_us", "spread_us", "TFLOP/s", "max_err", "win", "stale", "gpu", "measured_at"]
    for name in headers:
        assert sort_field(name) == (SORT_ALIASES[name], False)
        assert sort_field("-" + name) == (SORT_ALIASES[name], True)
        assert SORT_ALIASES[name] in {f for f in Row.__dataclass_fields__}
        table.rows(sort=name)
    with pytest.raises(ValueError) as info:
        table.rows(sort="-speed")
    assert "'-speed'" in str(info.value) and "TFLOP/s" in str(info.value) and "problem_key" in str(info.value)


# -- shapes within a key -----------------------------------------------------------------

BIG, SMALL = "B4 H16 Sq4096 Sk4096", "B1 H16 Sq2049 Sk2049"  # one key: q4096 k4096 bh64 (B*H rounds up)


def test_best_does_not_compare_different_shapes_of_a_key(table):
    # A is faster than C on the big shape; B was only measured on a smaller shape, where any
    # variant takes less time: its 100 us says nothing against A's 300 us.
    record(table, A, 300.0, shape=BIG, measured_at="2025-01-01T00:00:00+00:00")
    record(table, C, 350.0, shape=BIG, measured_at="2025-01-01T00:00:00+00:00")
    record(table, B, 100.0, shape=SMALL, measured_at="2025-06-01T00:00:00+00:00")
    hashes = {A: "h1", B: "h1", C: "h1"}
    assert table.best(KEY, ENV, hashes).variant == A  # the reference shape: the most variants
    assert table.best(KEY, ENV, hashes, shape=BIG).variant == A
    # Each measured shape has a winner of its own: B on the small shape, where only it was measured.
    assert table.best(KEY, ENV, hashes, shape=SMALL).variant == B
    assert [(r.variant, r.winner) for r in table.rows(sort="variant")] == sorted([(A, True), (B, True), (C, False)])


def test_a_second_shape_of_a_key_keeps_the_first_shapes_rows(table):
    """The shape is part of a row's identity: tuning B6 of a key must not replace what was measured
    on B8 (decoding over 8k keys: a cluster of 4 wins at B6 and runs 1.6x slower at B8)."""
    b8, b6, b7 = "B8 H32 Sq4 Sk8192", "B6 H32 Sq4 Sk8192", "B7 H32 Sq4 Sk8192"
    record(table, A, 65.0, shape=b8)
    record(table, B, 101.0, shape=b8)
    record(table, A, 59.0, shape=b6)
    record(table, B, 57.0, shape=b6)
    assert len(table.rows()) == 4
    hashes = {A: "h1", B: "h1"}
    assert table.best(KEY, ENV, hashes, shape=b8).variant == A
    assert table.best(KEY, ENV, hashes, shape=b6).variant == B
    assert table.best(KEY, ENV, hashes, shape=b7).variant == A  # 8/7 is nearer than 7/6
    record(table, A, 64.0, shape=b8)  # the same identity again replaces its row
    assert sorted((r.variant, r.shape, r.median_us) for r in table.rows()) == \
        [(A, b6, 59.0), (A, b8, 64.0), (B, b6, 57.0), (B, b8, 101.0)]


def test_pick_nearest_takes_the_nearest_shape_then_the_earlier_source():
    base = dict(problem_key=str(KEY), spread_us=0.0, tflops=1.0, samples=1, max_abs_err=0.0,
                **ENV.as_dict(), source_hash="h", measured_at="2025-01-01T00:00:00+00:00")
    user = [Row(A, shape="B6 H32 Sq4 Sk8192", median_us=57.0, **base)]
    shipped = [Row(B, shape="B8 H32 Sq4 Sk8192", median_us=65.0, **base)]
    assert table_module.pick_nearest([user, shipped], "B8 H32 Sq4 Sk8192") == (1, shipped[0])
    assert table_module.pick_nearest([user, shipped], "B5 H32 Sq4 Sk8192") == (0, user[0])
    assert table_module.pick_nearest([user, shipped], "B4 H64 Sq4 Sk8192") == (1, shipped[0])  # B*H counts
    # Equally near (or no shape given): the earlier source, the user's.
    same = [Row(C, shape="B8 H32 Sq4 Sk8192", median_us=90.0, **base)]
    assert table_module.pick_nearest([same, shipped], "B8 H32 Sq4 Sk8192") == (0, same[0])
    assert table_module.pick_nearest([user, shipped]) == (0, user[0])
    assert table_module.pick_nearest([[], []], "B8 H32 Sq4 Sk8192") is None
    # A shape text of another form (a hand edit) serves only where nothing else does.
    odd = [Row(C, shape="eight sequences", median_us=1.0, **base)]
    assert table_module.pick_nearest([odd, shipped], "B1 H32 Sq4 Sk8192") == (1, shipped[0])
    assert table_module.pick_nearest([odd], "B1 H32 Sq4 Sk8192") == (0, odd[0])


def test_a_table_made_before_the_shape_joined_the_identity_is_migrated(tmp_path):
    path = tmp_path / "tuning.db"
    columns = ("variant TEXT NOT NULL, problem_key TEXT NOT NULL, shape TEXT NOT NULL, median_us REAL NOT NULL, "
               "spread_us REAL NOT NULL, tflops REAL NOT NULL, samples INTEGER NOT NULL, max_abs_err REAL NOT NULL, "
               "gpu_name TEXT NOT NULL, sm_count INTEGER NOT NULL, cuda TEXT NOT NULL, torch TEXT NOT NULL, "
               "cutlass TEXT NOT NULL, source_hash TEXT NOT NULL, measured_at TEXT NOT NULL")
    old_key = "variant, problem_key, gpu_name, sm_count, cuda, torch, cutlass, source_hash"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(f"CREATE TABLE results ({columns}, PRIMARY KEY ({old_key}));"
                           "CREATE INDEX results_by_key ON results (problem_key, median_us);")
        conn.execute("INSERT INTO results VALUES (?, ?, 'B8 H32 Sq4 Sk8192', 65.0, 1.0, 1.0, 10, 0.0, ?, ?, ?, ?, ?, "
                     "'h1', '2025-01-01T00:00:00+00:00')", (A, str(KEY), *ENV.as_dict().values()))
        conn.commit()
    table = TuningTable(path)
    assert [(r.variant, r.shape, r.median_us) for r in table.rows()] == [(A, "B8 H32 Sq4 Sk8192", 65.0)]
    record(table, A, 59.0, shape="B6 H32 Sq4 Sk8192")  # beside the B8 row, not in its place
    assert sorted(r.shape for r in table.rows()) == ["B6 H32 Sq4 Sk8192", "B8 H32 Sq4 Sk8192"]
    assert TuningTable(path).best(KEY, ENV, {A: "h1"}, shape="B8 H32 Sq4 Sk8192").median_us == 65.0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "results_before_shape_identity" not in names and "results_by_key" in names


def test_best_uses_the_most_recent_shape_among_equally_covered_ones(table):
    old, new = "2025-01-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00"
    record(table, A, 300.0, shape=BIG, measured_at=old)
    record(table, B, 100.0, shape=SMALL, measured_at=new)
    assert table.best(KEY, ENV, {A: "h1", B: "h1"}).variant == B  # one variant each: newest shape
    record(table, A, 90.0, shape=SMALL, measured_at=new)  # A re-measured on the small shape: faster there
    assert table.best(KEY, ENV, {A: "h1", B: "h1"}).variant == A
    # Only current rows count: with B's build changed, A is alone.
    assert table.best(KEY, ENV, {A: "h1", B: "new"}).variant == A


def test_pick_winner_ties_are_deterministic():
    base = dict(problem_key=str(KEY), spread_us=0.0, tflops=1.0, samples=1, max_abs_err=0.0,
                **ENV.as_dict(), source_hash="h", measured_at="2025-01-01T00:00:00+00:00")
    rows = [Row(A, shape="S2", median_us=5.0, **base), Row(B, shape="S1", median_us=7.0, **base)]
    assert pick_winner(rows).variant == B  # same count and time: the smaller shape text
    assert pick_winner(reversed(rows)).variant == B
    assert pick_winner([]) is None


# -- forget ------------------------------------------------------------------------------

def test_forget_removes_only_that_variant_key_env_and_hash(table):
    record(table, A, 100.0)
    record(table, A, 100.0, source_hash="h2")
    record(table, A, 100.0, env=OTHER_ENV)
    record(table, A, 100.0, key=OTHER_KEY)
    record(table, B, 200.0)
    assert table.forget(A, KEY, ENV, "h1") == 1
    assert table.best(KEY, ENV, {A: "h1", B: "h1"}).variant == B
    left = {(r.variant, r.problem_key, r.source_hash, r.sm_count) for r in table.rows(include_stale=True)}
    assert left == {(A, str(KEY), "h2", 132), (A, str(KEY), "h1", 114), (A, str(OTHER_KEY), "h1", 132),
                    (B, str(KEY), "h1", 132)}
    assert table.forget(A, KEY, ENV, "h1") == 0


def test_clear(table):
    record(table, A, 300.0)
    record(table, B, 200.0)
    record(table, C, 100.0, key=OTHER_KEY)
    assert table.clear(variant_glob="fc_mma_*_m64_*") == 1
    assert {r.variant for r in table.rows()} == {A, C}
    assert table.clear(problem_key=OTHER_KEY) == 1
    assert table.clear() == 1
    assert table.rows(include_stale=True) == []


# -- damaged files ---------------------------------------------------------------------------

def _valid_db_bytes(tmp_path, rows=300) -> bytes:
    t = TuningTable(tmp_path / "source" / "tuning.db")
    row = record(t, "v", 1.0, shape="x" * 200)
    values = {k: v for k, v in row.__dict__.items() if k not in table_module.DISPLAY_FIELDS}
    conn = sqlite3.connect(t.path)
    with conn:  # one transaction: many pages, quickly
        conn.executemany(f"INSERT INTO results VALUES ({', '.join('?' * len(values))})",
                         [(f"v{i}", *list(values.values())[1:]) for i in range(rows)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return t.path.read_bytes()


def _garbage(kind, tmp_path) -> bytes:
    if kind == "random":
        return os.urandom(5000)
    if kind == "text":
        return b"not a database at all\n"
    good = _valid_db_bytes(tmp_path)
    return good[: {"truncated_header": 50, "truncated_half": len(good) // 2}[kind]]


@pytest.mark.parametrize("kind", ["random", "text", "truncated_header", "truncated_half"])
def test_corrupt_file_is_moved_aside_with_one_warning(tmp_path, kind):
    path = tmp_path / "cache" / "tuning.db"
    path.parent.mkdir()
    content = _garbage(kind, tmp_path)
    path.write_bytes(content)
    Path(f"{path}-wal").write_bytes(b"wal of the broken file")
    Path(f"{path}-shm").write_bytes(b"\0" * 100)
    with pytest.warns(TableWarning) as caught:
        t = TuningTable(path)
    assert len(caught) == 1
    moved = [p for p in path.parent.iterdir() if p.name.startswith("tuning.db.corrupt-") and not p.name.endswith("-wal")]
    assert len(moved) == 1
    assert moved[0].read_bytes() == content
    # Side files stay consistent: the old WAL goes with its file (unless SQLite already dropped
    # or reset it on reading the broken file), never stays beside the fresh table.
    old_wal = Path(f"{moved[0]}-wal")
    assert not old_wal.exists() or old_wal.read_bytes() in (b"", b"wal of the broken file")
    for side in ("-wal", "-shm"):
        fresh_side = Path(f"{path}{side}")
        assert not fresh_side.exists() or b"broken" not in fresh_side.read_bytes()
    message = str(caught[0].message)
    assert str(path) in message and str(moved[0]) in message
    # A fresh, working table at the same path.
    assert t.mode == "rw" and t.rows(include_stale=True) == []
    record(t, A, 10.0)
    assert t.best(KEY, ENV, {A: "h1"}).variant == A
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reopening the fresh one warns no more
        assert TuningTable(path).best(KEY, ENV, {A: "h1"}).variant == A


def test_zero_length_file_is_an_empty_table(tmp_path):
    path = tmp_path / "tuning.db"
    path.touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = TuningTable(path)
    assert t.rows() == []
    record(t, A, 1.0)
    assert len(t.rows()) == 1


def test_corruption_found_during_use_reopens_a_fresh_table(table):
    record(table, A, 1.0)
    table.path.write_bytes(os.urandom(8192))
    for side in ("-wal", "-shm"):
        Path(f"{table.path}{side}").unlink(missing_ok=True)
    with pytest.raises(TableError, match="corrupt"):
        table.best(KEY, ENV, {A: "h1"})
    with pytest.warns(TableWarning, match="moved it to"):
        assert table.best(KEY, ENV, {A: "h1"}) is None  # the next operation moves it aside
    assert table.mode == "rw"


def test_corrupt_file_that_cannot_be_moved_raises_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "tuning.db"
    path.write_bytes(os.urandom(4096))

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(table_module.os, "replace", refuse)
    t = TuningTable(path)  # opening never raises: dispatch must be able to carry on
    assert t.mode is None and isinstance(t.error, TableError)
    with pytest.raises(TableError) as info:
        t.rows()
    message = str(info.value)
    assert "corrupt" in message and "cannot be moved aside" in message and "FLASHCORE_CACHE_DIR" in message
    assert not isinstance(info.value.__cause__, TableError)
    assert path.exists()  # left alone


def test_cache_dir_that_is_a_file_raises_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a directory")
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(blocker))
    t = TuningTable()
    for operation in (lambda: t.rows(), lambda: record(t, A, 1.0), lambda: t.check()):
        with pytest.raises(TableError) as info:
            operation()
        assert isinstance(info.value, RuntimeError)
        message = str(info.value)
        assert str(blocker) in message and "regular file" in message and "FLASHCORE_CACHE_DIR=" in message
    # Deeper below the file too.
    with pytest.raises(TableError, match="regular file"):
        TuningTable(blocker / "a" / "b" / "tuning.db").rows()


def test_directory_at_the_table_path_raises_a_clear_error(tmp_path):
    path = tmp_path / "tuning.db"
    path.mkdir()
    t = TuningTable(path)
    with pytest.raises(TableError, match="is a directory") as info:
        t.best(KEY, ENV, {})
    assert "FLASHCORE_CACHE_DIR" in str(info.value)
    assert path.is_dir()  # never moved: it is not a file we made
    path.rmdir()
    assert t.rows() == []  # fixed: the next operation opens it


# -- concurrency and crashes -------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from flashcore_cutlass.env import Environment
    from flashcore_cutlass.table import TuningTable
    path, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():  # start together: every process opens the new file at once
        time.sleep(0.001)
    env = Environment("gpu", 1, "c", "t", "k")
    table = TuningTable(path)
    i = 0
    while count < 0 or i < count:
        table.record(f"{name}_{i}", "bf16_d64_full_q64_k64_bh1", shape="s", median_us=i, spread_us=0,
                     tflops=1, samples=1, max_abs_err=0, env=env, source_hash="h")
        i += 1
""")


def _writers(path, names, count, go):
    return [subprocess.Popen([sys.executable, "-c", WRITER, str(path), n, str(count), str(go)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]


@pytest.mark.parametrize("processes,count", [(4, 50), (8, 3)])
def test_concurrent_writers_lose_no_rows(tmp_path, processes, count):
    path, go = tmp_path / "new" / "tuning.db", tmp_path / "go"
    procs = _writers(path, [f"p{i}" for i in range(processes)], count, go)
    time.sleep(0.5)  # let every interpreter start and wait
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Warning" not in err, err
    rows = TuningTable(path).rows(include_stale=True)
    assert {r.variant for r in rows} == {f"p{i}_{j}" for i in range(processes) for j in range(count)}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_writer_killed_mid_write_keeps_every_earlier_row(tmp_path):
    path, go = tmp_path / "tuning.db", tmp_path / "go"
    go.touch()
    (proc,) = _writers(path, ["w"], -1, go)  # records until killed
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 40 and time.monotonic() < deadline:
            if path.exists():
                with contextlib.suppress(TableError):  # e.g. the schema is being made
                    seen = {r.variant for r in TuningTable(path).rows(include_stale=True)}
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(seen) >= 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "moved aside": nothing is corrupt
        after = TuningTable(path)
        rows = {r.variant for r in after.rows(include_stale=True)}
    assert after.mode == "rw"
    assert seen <= rows
    assert rows == {f"w_{i}" for i in range(len(rows))}  # no gaps: every earlier row is there


# -- read-only -------------------------------------------------------------------------------

def test_read_only_table_reads_and_refuses_writes(table, monkeypatch):
    record(table, A, 300.0)  # recorded while writable ...
    record(table, B, 200.0)
    keep_open = sqlite3.connect(table.path)  # keeps the WAL index, as a running tuner would
    try:
        keep_open.execute("SELECT 1 FROM results").fetchall()
        monkeypatch.setattr(sqlite3, "connect", _ro_connect(sqlite3.connect))  # ... then read-only
        ro = TuningTable(table.path)
        assert ro.mode == "ro" and not ro.writable
        assert [r.variant for r in ro.rows()] == [B, A]
        assert ro.best(KEY, ENV, {A: "h1", B: "h1"}).variant == B
        for write in (lambda: record(ro, C, 1.0), lambda: ro.clear(), lambda: ro.forget(A, KEY, ENV, "h1"),
                      lambda: ro.check(write=True)):
            with pytest.raises(TableError) as info:
                write()
            assert "read-only" in str(info.value) and "FLASHCORE_CACHE_DIR" in str(info.value)
        ro.check()  # reading is fine
    finally:
        keep_open.close()
    monkeypatch.undo()
    assert len(TuningTable(table.path).rows()) == 2  # nothing was changed


def _ro_connect(real_connect):
    """sqlite3.connect opening every read-write connection read-only (``mode=ro``): SQLite
    itself then refuses writes, as for a file the process cannot write (tests run as root,
    where chmod stops nothing)."""

    def connect(database, *args, uri=False, **kwargs):
        if not uri:
            database, uri = f"file:{Path(database).absolute()}?mode=ro", True
        return real_connect(database, *args, uri=uri, **kwargs)

    return connect


def test_read_only_missing_table_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite3, "connect", _ro_connect(sqlite3.connect))
    t = TuningTable(tmp_path / "tuning.db")
    with pytest.raises(TableError, match="none can be created"):
        t.rows()


READ_ONLY_MOUNT = textwrap.dedent("""
    import json, sys
    from flashcore_cutlass.env import Environment
    from flashcore_cutlass.table import TableError, TuningTable
    env = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
    t = TuningTable(sys.argv[1])
    out = {"mode": t.mode, "variants": [r.variant for r in t.rows()],
           "best": t.best(sys.argv[2], env, {v: "h1" for v in sys.argv[3:]}).variant}
    try:
        t.clear()
        out["write"] = "no error"
    except TableError as exc:
        out["write"] = str(exc)
    print(json.dumps(out))
""")


def test_read_only_file_system_for_real(table, tmp_path):
    """A read-only bind mount (needs unshare and mount rights; skipped elsewhere)."""
    if not (shutil.which("unshare") and shutil.which("mount")):
        pytest.skip("needs unshare and mount")
    record(table, A, 300.0)
    record(table, B, 200.0)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount --bind {table.path.parent} {mnt} && mount -o remount,bind,ro {mnt} && "
              f"exec {sys.executable} -c \"$0\" {mnt / 'tuning.db'} {KEY} {A} {B}")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, READ_ONLY_MOUNT],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "mount" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["mode"] == "immutable"  # not even the WAL index can be created there
    assert got["variants"] == [B, A] and got["best"] == B
    assert "read-only" in got["write"] and "FLASHCORE_CACHE_DIR" in got["write"]


def test_read_only_empty_database_reads_as_empty(tmp_path, monkeypatch):
    path = tmp_path / "tuning.db"
    path.touch()  # a valid, empty SQLite database without our schema
    monkeypatch.setattr(sqlite3, "connect", _ro_connect(sqlite3.connect))
    t = TuningTable(path)
    assert t.mode == "ro"
    assert t.rows() == [] and t.best(KEY, ENV, {A: "h1"}) is None
    with pytest.raises(TableError, match="read-only"):
        record(t, A, 1.0)


def test_corrupt_file_on_a_read_only_file_system_for_real(tmp_path):
    """Corrupt and on a read-only mount: a clear error, no loop, the file left alone."""
    if not (shutil.which("unshare") and shutil.which("mount")):
        pytest.skip("needs unshare and mount")
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    (src / "tuning.db").write_bytes(b"garbage" * 1000)
    probe = ("import sys; from flashcore_cutlass.table import TuningTable; t = TuningTable(sys.argv[1]); "
             "print(t.mode); print(t.error)")
    script = (f"mount --bind {src} {mnt} && mount -o remount,bind,ro {mnt} && "
              f"exec {sys.executable} -c \"$0\" {mnt / 'tuning.db'}")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, probe],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "mount" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    mode, error = proc.stdout.splitlines()
    assert mode == "None"
    assert "corrupt" in error and "FLASHCORE_CACHE_DIR" in error
    assert (src / "tuning.db").read_bytes() == b"garbage" * 1000
