import sqlite3
from types import SimpleNamespace

import pytest

from flashcore_cutlass import env as env_module
from flashcore_cutlass.env import Environment
from flashcore_cutlass.paths import cache_dir
from flashcore_cutlass.problem import ProblemKey
from flashcore_cutlass.table import Row, TuningTable, default_table_path

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


def test_clear(table):
    record(table, A, 300.0)
    record(table, B, 200.0)
    record(table, C, 100.0, key=OTHER_KEY)
    assert table.clear(variant_glob="fc_mma_*_m64_*") == 1
    assert {r.variant for r in table.rows()} == {A, C}
    assert table.clear(problem_key=OTHER_KEY) == 1
    assert table.clear() == 1
    assert table.rows(include_stale=True) == []
