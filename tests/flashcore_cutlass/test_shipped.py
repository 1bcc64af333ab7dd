"""The shipped tuning table: its file format, its lookup rules, its place in dispatch
(tuned -> shipped -> heuristic) and `flashcore table`'s view and export of it. CPU only."""

import dataclasses
import json
import warnings

import pytest

from flashcore_codegen.families import PipelinedConfig
from flashcore_cutlass import cli as cli_module
from flashcore_cutlass import shipped as shipped_module
from flashcore_cutlass.cli import main
from flashcore_cutlass.env import Environment
from flashcore_cutlass.problem import Problem, shape_text
from flashcore_cutlass.registry import Choice, Registry
from flashcore_cutlass.shipped import ROW_FIELDS, ShippedTable, ShippedTableError, default_table, export, load
from flashcore_cutlass.table import Row, TableWarning, TuningTable

ENV = Environment("NVIDIA H100 80GB HBM3", 132, "13.0", "2.11.0+cu130", "4.2.0.0")
H200 = Environment("NVIDIA H200", 132, "13.0", "2.11.0+cu130", "4.2.0.0")
PROBLEM = Problem("bf16", 128, True, 4, 16, 4096, 4096)
KEY = str(PROBLEM.key)
# The heuristic's pick (m128 n64 w4 s2) and two others the tables can name.
HEURISTIC, FAST, OTHER = (PipelinedConfig(dtype="bf16", head_dim=128, causal=True, block_m=m, block_n=n, warps=4,
                                          stages=2).name for m, n in ((128, 64), (128, 128), (64, 64)))
HASHES = {name: f"hash-{name}" for name in (HEURISTIC, FAST, OTHER)}
PROVENANCE = {"commit": "abc123", "exported_at": "2026-11-26T10:00:00+00:00", "flashcore": "0.1.0", "cudnn": "91002"}


def row(variant=FAST, median_us=500.0, *, key=KEY, env=ENV, source_hash=None, shape="B4 H16 Sq4096 Sk4096"):
    return Row(variant=variant, problem_key=key, shape=shape, median_us=median_us, spread_us=2.0, tflops=275.0,
               samples=30, max_abs_err=1e-3, **env.as_dict(), source_hash=source_hash or HASHES[variant],
               measured_at="2026-11-26T09:00:00+00:00")


def write_shipped(path, *rows):
    return export(rows, path, provenance=PROVENANCE)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLASHCORE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("FLASHCORE_SHIPPED_TABLE", str(tmp_path / "shipped.json"))
    monkeypatch.delenv("FLASHCORE_PRINT_DISPATCH", raising=False)
    shipped_module._load_once.cache_clear()  # each test reads its own file
    yield
    shipped_module._load_once.cache_clear()


@pytest.fixture
def shipped_path(tmp_path):
    return tmp_path / "shipped.json"


def registry(table=None, env=ENV, shipped=None):
    return Registry(HASHES, table, env, shipped=shipped)


# -- the file -------------------------------------------------------------------------

def test_export_writes_what_load_reads(shipped_path):
    rows = [row(FAST, 500.0), row(OTHER, 900.0, key="bf16_d128_causal_q1024_k1024_bh256")]
    write_shipped(shipped_path, *rows)
    table = load(shipped_path)
    assert table.provenance == PROVENANCE and table.path == shipped_path
    by_key = sorted(table.rows, key=lambda r: r.problem_key, reverse=True)
    assert [dataclasses.replace(r, source="tuned") for r in by_key] == rows  # every stored field
    assert all(r.source == "shipped" for r in table.rows)


def test_file_is_json_with_one_row_per_line(shipped_path):
    write_shipped(shipped_path, row(FAST), row(OTHER, key="bf16_d128_causal_q1024_k1024_bh256"))
    text = shipped_path.read_text()
    data = json.loads(text)
    assert (data["format"], data["version"]) == ("flashcore-shipped-table", 1)
    row_lines = [line for line in text.splitlines() if '"variant"' in line]
    assert len(row_lines) == 2 and all(json.loads(line.strip().rstrip(","))["gpu_name"] == ENV.gpu_name
                                       for line in row_lines)
    # Provenance travels with each row too: the versions it was measured with.
    assert data["rows"][0]["torch"] == "2.11.0+cu130" and data["rows"][0]["source_hash"].startswith("hash-")


def test_an_empty_export_reads_back_empty(shipped_path):
    write_shipped(shipped_path)
    assert len(load(shipped_path)) == 0


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_missing_or_empty_file_is_an_empty_table_without_a_warning(content, shipped_path):
    if content is not None:
        shipped_path.write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(default_table()) == 0
        assert registry().choose(PROBLEM) == Choice(HEURISTIC, "heuristic")


GOOD_ROW = json.loads(json.dumps({f: getattr(row(), f) for f in ROW_FIELDS}))


@pytest.mark.parametrize("content, why", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a shipped tuning table"),
    (json.dumps({"format": "flashcore-shipped-table", "version": 99, "rows": []}), "format version 99"),
    (json.dumps({"format": "flashcore-shipped-table", "version": 1, "rows": {}}), '"rows" is not a list'),
    (json.dumps({"format": "flashcore-shipped-table", "version": 1, "rows": [{**GOOD_ROW, "sm_count": "132"}]}),
     "row 0: sm_count must be int"),
    (json.dumps({"format": "flashcore-shipped-table", "version": 1,
                 "rows": [GOOD_ROW, {k: v for k, v in GOOD_ROW.items() if k != "source_hash"}]}),
     "row 1 has no 'source_hash'"),
    (json.dumps({"format": "flashcore-shipped-table", "version": 1, "rows": [{**GOOD_ROW, "median_us": -1}]}),
     "median_us must be a positive number"),
])
def test_a_damaged_file_warns_once_and_is_ignored(content, why, shipped_path):
    shipped_path.write_text(content)
    with pytest.raises(ShippedTableError, match=why):
        load(shipped_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = registry().choose(PROBLEM)
        second = registry().choose(dataclasses.replace(PROBLEM, seqlen_q=1024, seqlen_k=1024))
    assert first == Choice(HEURISTIC, "heuristic") and second.reason == "heuristic"
    messages = [str(w.message) for w in caught if issubclass(w.category, TableWarning)]
    assert len(messages) == 1 and f"ignoring the shipped tuning table {shipped_path}" in messages[0]
    assert why in messages[0]


def test_optional_fields_may_be_left_out(shipped_path):
    required = {k: GOOD_ROW[k] for k in shipped_module.REQUIRED}
    shipped_path.write_text(json.dumps({"format": "flashcore-shipped-table", "version": 1, "rows": [required]}))
    (r,) = load(shipped_path).rows
    assert (r.variant, r.torch, r.samples) == (FAST, "", 0)


def test_the_file_is_read_once_and_only_when_needed(shipped_path, monkeypatch):
    write_shipped(shipped_path, row(FAST))
    reads = []
    real_load = shipped_module.load
    monkeypatch.setattr(shipped_module, "load", lambda path: reads.append(path) or real_load(path))
    reg = registry()
    assert reads == []  # building a registry reads nothing
    assert reg.choose(PROBLEM).reason == "shipped"
    registry().choose(dataclasses.replace(PROBLEM, seqlen_q=1024, seqlen_k=1024))
    assert reads == [str(shipped_path)]


def test_off_disables_the_shipped_table(shipped_path, monkeypatch):
    write_shipped(shipped_path, row(FAST))
    monkeypatch.setenv("FLASHCORE_SHIPPED_TABLE", "off")
    assert shipped_module.default_paths() == ()
    assert registry().choose(PROBLEM) == Choice(HEURISTIC, "heuristic")


def test_the_default_files_live_in_the_package(monkeypatch):
    monkeypatch.delenv("FLASHCORE_SHIPPED_TABLE")
    paths = shipped_module.default_paths()
    assert paths == shipped_module.package_paths() and "tuned_h200.json" in [p.name for p in paths]
    assert all(p.parent.name == "data" and p.parent.parent.name == "flashcore_cutlass" for p in paths)



def test_the_package_files_are_one_table_and_each_row_serves_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("FLASHCORE_SHIPPED_TABLE")
    monkeypatch.setattr(shipped_module, "DATA_DIR", tmp_path / "data")
    write_shipped(tmp_path / "data" / "tuned_h100.json", row(FAST))
    export([row(OTHER, env=H200)], tmp_path / "data" / "tuned_h200.json",
           provenance=dict(PROVENANCE, commit="def456"))
    (tmp_path / "data" / "notes.json").write_text("not a table")  # not tuned_*.json: never read
    table = default_table()
    assert [p.path.name for p in table.parts] == ["tuned_h100.json", "tuned_h200.json"]
    assert [p.provenance["commit"] for p in table.parts] == ["abc123", "def456"] and len(table) == 2
    assert registry(env=ENV).choose(PROBLEM) == Choice(FAST, "shipped")
    assert registry(env=H200).choose(PROBLEM) == Choice(OTHER, "shipped")
    # Another board of the same model (other SM count) matches neither: it borrows the nearer one's winner.
    assert registry(env=dataclasses.replace(H200, sm_count=114)).choose(PROBLEM) == Choice(
        OTHER, "borrowed", "NVIDIA H200 (132 SMs)")


def test_a_damaged_package_file_leaves_the_others_serving(tmp_path, monkeypatch):
    monkeypatch.delenv("FLASHCORE_SHIPPED_TABLE")
    monkeypatch.setattr(shipped_module, "DATA_DIR", tmp_path / "data")
    write_shipped(tmp_path / "data" / "tuned_h100.json", row(FAST))
    (tmp_path / "data" / "tuned_h200.json").write_text("{not json")
    with pytest.warns(TableWarning, match="ignoring the shipped tuning table .*tuned_h200.json: not JSON"):
        assert registry(env=ENV).choose(PROBLEM) == Choice(FAST, "shipped")


@pytest.mark.parametrize("gpu, name", [("NVIDIA H100 80GB HBM3", "tuned_h100.json"), ("NVIDIA H200", "tuned_h200.json"),
                                       ("NVIDIA H100 PCIe", "tuned_h100.json"), ("NVIDIA GH200 480GB", "tuned_gh200.json"),
                                       ("", "tuned_gpu.json")])
def test_a_gpus_file_is_named_for_its_model(gpu, name):
    assert shipped_module.file_name_for(gpu) == name


# -- dispatch -------------------------------------------------------------------------

def test_a_matching_shipped_row_is_used_when_the_user_has_not_tuned(tmp_path):
    shipped = ShippedTable([row(FAST)])
    assert registry(TuningTable(tmp_path / "t.db"), shipped=shipped).choose(PROBLEM) == Choice(FAST, "shipped")
    assert registry(None, shipped=shipped).choose(PROBLEM) == Choice(FAST, "shipped")  # no user table at all


def test_the_users_tuned_row_overrides_the_shipped_one(tmp_path):
    table = TuningTable(tmp_path / "t.db")
    table.record(OTHER, PROBLEM.key, shape="B4 H16 Sq4096 Sk4096", median_us=700.0, spread_us=1.0, tflops=1.0,
                 samples=10, max_abs_err=0.0, env=ENV, source_hash=HASHES[OTHER])
    shipped = ShippedTable([row(FAST, 500.0)])  # faster, but the user's own measurement wins
    assert registry(table, shipped=shipped).choose(PROBLEM) == Choice(OTHER, "tuned")


def test_a_stale_user_row_falls_through_to_the_shipped_table(tmp_path):
    table = TuningTable(tmp_path / "t.db")
    older_torch = dataclasses.replace(ENV, torch="2.10.0")
    table.record(OTHER, PROBLEM.key, shape="B4 H16 Sq4096 Sk4096", median_us=1.0, spread_us=1.0, tflops=1.0,
                 samples=10, max_abs_err=0.0, env=older_torch, source_hash=HASHES[OTHER])
    assert registry(table, shipped=ShippedTable([row(FAST)])).choose(PROBLEM) == Choice(FAST, "shipped")


@pytest.mark.parametrize("change", [
    dict(gpu_name="NVIDIA H200"),
    dict(gpu_name="NVIDIA H100 PCIe"),
    dict(sm_count=66),  # a MIG slice of the same board
])
def test_a_row_of_another_gpu_or_sm_count_is_borrowed_not_trusted(change):
    other = dataclasses.replace(ENV, **change)
    shipped = ShippedTable([row(FAST, env=other)])
    assert registry(shipped=shipped).choose(PROBLEM) == Choice(
        FAST, "borrowed", f"{other.gpu_name} ({other.sm_count} SMs)")
    assert shipped.best(KEY, ENV, HASHES) is None  # never this GPU's measurement


def test_this_gpus_row_precedes_a_borrowed_one_even_when_slower():
    shipped = ShippedTable([row(OTHER, 900.0), row(FAST, 100.0, env=H200)])
    assert registry(shipped=shipped).choose(PROBLEM) == Choice(OTHER, "shipped")


def test_a_stale_row_of_this_gpu_gives_way_to_a_current_borrowed_one():
    # After a kernel change re-tuned on one card only: the other card takes its winners.
    shipped = ShippedTable([row(OTHER, source_hash="before the change"), row(FAST, env=H200)])
    assert registry(shipped=shipped).choose(PROBLEM) == Choice(FAST, "borrowed", "NVIDIA H200 (132 SMs)")


def test_the_nearest_gpu_lends_its_winner():
    pcie = dataclasses.replace(ENV, gpu_name="NVIDIA H100 PCIe", sm_count=114)
    h20 = dataclasses.replace(ENV, gpu_name="NVIDIA H20", sm_count=78)
    rows = [row(FAST, env=ENV), row(OTHER, env=H200), row(HEURISTIC, env=h20)]
    # SM counts tie (132): the longer common name prefix ("NVIDIA H100 ") decides.
    assert registry(env=pcie, shipped=ShippedTable(rows)).choose(PROBLEM).variant == FAST
    # The nearest SM count first: 78 is nearer 66 than 132 is.
    mig = dataclasses.replace(ENV, sm_count=66)
    assert registry(env=mig, shipped=ShippedTable(rows)).choose(PROBLEM) == Choice(
        HEURISTIC, "borrowed", "NVIDIA H20 (78 SMs)")
    # Among the nearest GPU's rows, the winner as for its own dispatch.
    rows += [row(OTHER, 400.0, env=ENV)]
    assert registry(env=pcie, shipped=ShippedTable(rows)).choose(PROBLEM).variant == OTHER


def test_a_stale_row_or_a_binary_of_several_architectures_is_never_borrowed(monkeypatch):
    shipped = ShippedTable([row(FAST, env=H200, source_hash="older")])
    assert registry(shipped=shipped).choose(PROBLEM) == Choice(HEURISTIC, "heuristic")
    # A target that runs on several capabilities (sm_80: A100 and H100) may have been measured on another
    # architecture, whose winners need not transfer.
    shipped_module.same_architecture_only.cache_clear()
    monkeypatch.setattr(PipelinedConfig, "ARCH", "sm_80")
    try:
        assert registry(shipped=ShippedTable([row(FAST, env=H200)])).choose(PROBLEM).reason == "heuristic"
    finally:
        shipped_module.same_architecture_only.cache_clear()


def test_a_row_of_another_source_hash_or_an_unbuilt_variant_is_ignored():
    assert registry(shipped=ShippedTable([row(FAST, source_hash="older")])).choose(PROBLEM).reason == "heuristic"
    unbuilt = Registry({HEURISTIC: HASHES[HEURISTIC]}, None, ENV, shipped=ShippedTable([row(FAST)]))
    assert unbuilt.choose(PROBLEM) == Choice(HEURISTIC, "heuristic")


@pytest.mark.parametrize("change", [dict(torch="2.14.1+cu130"), dict(cuda="12.8"), dict(cutlass="4.3.0.0"),
                                    dict(torch="2.12.0", cuda="12.9")])
def test_torch_cuda_and_cutlass_package_versions_do_not_matter(change):
    # The row was measured under other versions than the user's: only the GPU and the hash decide.
    shipped = ShippedTable([row(FAST, env=dataclasses.replace(ENV, **change))])
    assert registry(shipped=shipped).choose(PROBLEM) == Choice(FAST, "shipped")


def test_the_winner_among_matching_rows_is_the_fastest_on_the_reference_shape():
    rows = [row(FAST, 500.0), row(OTHER, 450.0), row(HEURISTIC, 100.0, shape="B1 H16 Sq4096 Sk4096")]
    assert registry(shipped=ShippedTable(rows)).choose(PROBLEM) == Choice(OTHER, "shipped")


def test_without_an_environment_nothing_is_trusted():
    assert registry(env=None, shipped=ShippedTable([row(FAST)])).choose(PROBLEM) == Choice(HEURISTIC, "heuristic")


def test_print_dispatch_names_the_shipped_table(monkeypatch, capsys):
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    registry(shipped=ShippedTable([row(FAST)])).choose(PROBLEM)
    assert f"-> {FAST} (shipped, measured on {shape_text(PROBLEM)})" in capsys.readouterr().err
    registry(shipped=ShippedTable([row(FAST, env=H200)])).choose(PROBLEM)
    assert f"-> {FAST} (borrowed from NVIDIA H200 (132 SMs), measured on {shape_text(PROBLEM)})" in capsys.readouterr().err


def test_a_default_registry_reads_the_file_named_by_the_environment(shipped_path):
    write_shipped(shipped_path, row(FAST))
    assert Registry(HASHES, None, ENV).choose(PROBLEM) == Choice(FAST, "shipped")


# -- flashcore table ----------------------------------------------------------------------

def _record(db, variant, median_us, env=ENV):
    TuningTable(db).record(variant, PROBLEM.key, shape="B4 H16 Sq4096 Sk4096", median_us=median_us, spread_us=1.0,
                           tflops=1.0, samples=10, max_abs_err=0.0, env=env, source_hash=HASHES[variant])


def _table_lines(capsys, *args):
    """(variant, source) of each printed row, and stderr (cells may be blank: read by column offset)."""
    assert main(["table", *args]) == 0
    captured = capsys.readouterr()
    header, *lines = captured.out.splitlines()
    variant, source = header.index("variant"), header.index("source")
    return [(line[variant:].split()[0], line[source:].split()[0]) for line in lines], captured.err


def test_table_marks_shipped_rows(tmp_path, shipped_path, capsys, monkeypatch):
    # Rows judged against no runtime (on a GPU machine the process's runtime, built by an earlier
    # test, would judge these made-up hashes stale).
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (None, None, "no runtime in this test"))
    db = tmp_path / "t.db"
    _record(db, OTHER, 700.0)
    write_shipped(shipped_path, row(FAST))
    rows, err = _table_lines(capsys, "--db", str(db))
    assert sorted(rows) == [(FAST, "shipped"), (OTHER, "tuned")]
    assert f"1 tuned rows from {db}; 1 shipped rows from {shipped_path}" in err
    assert _table_lines(capsys, "--db", str(db), "--shipped")[0] == [(FAST, "shipped")]
    assert _table_lines(capsys, "--db", str(db), "--no-shipped")[0] == [(OTHER, "tuned")]

    assert main(["table", "--db", str(db), "--json", "--shipped"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert (shown["variant"], shown["source"], shown["source_hash"]) == (FAST, "shipped", HASHES[FAST])


def test_table_win_column_follows_dispatch(tmp_path, shipped_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    db = tmp_path / "t.db"
    other_key = "bf16_d128_causal_q1024_k1024_bh256"
    write_shipped(shipped_path, row(FAST), row(FAST, key=other_key),
                  row(OTHER, env=dataclasses.replace(ENV, gpu_name="NVIDIA H200")))
    _record(db, OTHER, 700.0)  # the user tuned KEY: the shipped row of KEY is not what dispatch uses

    assert main(["table", "--db", str(db), "--winners", "--json"]) == 0
    winners = {(r["problem_key"], r["variant"], r["source"]) for r in json.loads(capsys.readouterr().out)}
    assert winners == {(KEY, OTHER, "tuned"), (other_key, FAST, "shipped")}

    # The H200 row is stale here: shown with --all only.
    assert main(["table", "--db", str(db), "--shipped", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["table", "--db", str(db), "--shipped", "--json", "--all"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_table_shows_a_borrowed_row_as_its_keys_winner(tmp_path, shipped_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (PCIE, HASHES, None))
    other_key = "bf16_d128_causal_q1024_k1024_bh256"
    write_shipped(shipped_path, row(FAST), row(OTHER, 400.0), row(OTHER, env=H200, key=other_key),
                  row(FAST, env=H200, key=other_key, source_hash="older"))
    assert main(["table", "--db", str(tmp_path / "t.db"), "--shipped", "--json"]) == 0
    shown = {(r["problem_key"], r["variant"], r["source"], r["winner"]) for r in json.loads(capsys.readouterr().out)}
    # Per key the nearest GPU's winner; its other rows and stale rows stay stale (hidden).
    assert shown == {(KEY, OTHER, "borrowed", True), (other_key, OTHER, "borrowed", True)}
    _, err = _table_lines(capsys, "--db", str(tmp_path / "t.db"), "--shipped")
    assert "2 shipped rows from" in err and "(2 borrowed: measured on another GPU of this architecture" in err


def test_export_shipped_writes_this_environments_winners(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    db = tmp_path / "t.db"
    _record(db, OTHER, 700.0)
    _record(db, FAST, 600.0)
    _record(db, HEURISTIC, 100.0, env=dataclasses.replace(ENV, torch="2.10.0"))  # stale: not exported
    out = tmp_path / "export" / "tuned_h100.json"
    assert main(["table", "--db", str(db), "--export-shipped", str(out)]) == 0
    assert f"wrote 1 winners ({ENV.gpu_name}, 132 SMs) to {out}" in capsys.readouterr().err
    exported = load(out)
    assert [(r.problem_key, r.variant, r.median_us, r.torch) for r in exported.rows] == \
        [(KEY, FAST, 600.0, ENV.torch)]
    assert set(exported.provenance) == {"commit", "exported_at", "flashcore", "cudnn", "toolchain"}
    # A directory gets the file named for this GPU's model.
    assert main(["table", "--db", str(db), "--export-shipped", str(out.parent)]) == 0
    assert load(out.parent / "tuned_h100.json").rows == exported.rows
    assert "note:" not in capsys.readouterr().err
    # Replacing a file that held more keys says which ones the new file lacks.
    write_shipped(out, row(FAST), row(OTHER, key="bf16_d128_causal_q1024_k1024_bh256"))
    assert main(["table", "--db", str(db), "--export-shipped", str(out)]) == 0
    assert ("note: 1 measured shapes of the file it replaced are not in it (tune them in this table and export again "
            f"to keep them): bf16_d128_causal_q1024_k1024_bh256 [{shape_text(PROBLEM)}]") in capsys.readouterr().err
    assert [r.problem_key for r in load(out).rows] == [KEY]
    # What was exported is what a user on another torch release dispatches from.
    user_env = dataclasses.replace(ENV, torch="2.14.1+cu130")
    assert Registry(HASHES, None, user_env, shipped=exported).choose(PROBLEM) == Choice(FAST, "shipped")


def test_export_shipped_needs_the_current_environment_and_rows(tmp_path, capsys, monkeypatch):
    db = tmp_path / "t.db"
    out = tmp_path / "x.json"
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (None, None, "torch sees no GPU"))
    assert main(["table", "--db", str(db), "--export-shipped", str(out)]) == 1
    assert "cannot tell which they are (torch sees no GPU)" in capsys.readouterr().err
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    assert main(["table", "--db", str(db), "--export-shipped", str(out)]) == 1
    assert "no current tuned rows to export" in capsys.readouterr().err
    assert main(["table", "--db", str(db), "--all", "--export-shipped", str(out)]) == 1
    assert "leave out --all" in capsys.readouterr().err
    assert not out.exists()


def test_doctor_reports_the_shipped_table(shipped_path, monkeypatch):
    from flashcore_cutlass import doctor

    write_shipped(shipped_path, row(FAST))
    line = next(doctor._shipped_lines())
    assert line == (f"shipped table: {shipped_path}, 1 rows of NVIDIA H100 80GB HBM3 (132 SMs) (commit abc123, "
                    "exported 2026-11-26T10:00:00+00:00)")
    monkeypatch.setenv("FLASHCORE_SHIPPED_TABLE", "off")
    assert list(doctor._shipped_lines()) == ["shipped table: off (FLASHCORE_SHIPPED_TABLE=off)"]


def test_doctor_reports_each_package_file(tmp_path, monkeypatch):
    from flashcore_cutlass import doctor

    monkeypatch.delenv("FLASHCORE_SHIPPED_TABLE")
    monkeypatch.setattr(shipped_module, "DATA_DIR", tmp_path / "data")
    assert list(doctor._shipped_lines()) == [f"shipped table: none (no tuned_*.json in {tmp_path / 'data'})"]
    write_shipped(tmp_path / "data" / "tuned_h100.json", row(FAST))
    write_shipped(tmp_path / "data" / "tuned_h200.json", row(OTHER, env=H200), row(FAST, env=H200))
    shipped_module._load_once.cache_clear()
    lines = list(doctor._shipped_lines())
    assert lines[:2] == [f"shipped table: {tmp_path / 'data' / n}, {k} rows of {gpu} (132 SMs) (commit abc123, "
                         f"exported 2026-11-26T10:00:00+00:00)"
                         for n, k, gpu in (("tuned_h100.json", 1, ENV.gpu_name), ("tuned_h200.json", 2, "NVIDIA H200"))]


PCIE = Environment("NVIDIA H100 PCIe", 114, "13.0", "2.11.0+cu130", "4.2.0.0")
CHANGED = {name: "changed" for name in HASHES}


@pytest.mark.parametrize("gpu, hashes, hint", [
    (PCIE, HASHES,
     "  none was measured on this GPU (NVIDIA H100 PCIe, 114 SMs): dispatch borrows the winners of NVIDIA H100 80GB "
     "HBM3 (132 SMs) for 1 key, and uses the heuristic elsewhere, until `flashcore tune` measures your shapes"),
    (PCIE, CHANGED,
     "  none was measured on this GPU (NVIDIA H100 PCIe, 114 SMs): dispatch uses the heuristic until `flashcore "
     "tune` measures your shapes"),
    (ENV, CHANGED,
     "  their source hashes are not this build's (the kernels changed since they were measured): dispatch uses the "
     "heuristic until `flashcore tune --suite shipped` measures every shipped key again"),
    (ENV, HASHES, None),
])
def test_doctor_says_why_no_shipped_row_serves(shipped_path, monkeypatch, gpu, hashes, hint):
    from types import SimpleNamespace

    from flashcore_cutlass import doctor, runtime

    write_shipped(shipped_path, row(FAST))
    monkeypatch.setattr(runtime, "get_runtime", lambda: SimpleNamespace(env=gpu, hashes=hashes))
    lines = list(doctor._shipped_lines())
    usable = 0 if hint else 1
    assert lines[1] == f"shipped rows usable here: {usable} of 1 (same GPU, SM count and source hash)"
    assert lines[2:] == ([hint] if hint else [])


# -- the package's own table ---------------------------------------------------------
def test_the_package_rows_are_current():
    """Every row of the shipped table names a default variant (what `flashcore build` builds) and
    holds the source hash today's sources give it, so that a change of a family's headers cannot
    leave the table stale unnoticed (carry the rows over with benchmarks/rekey_shipped.py, or tune
    again). The hashes include the toolchain's identity; a machine with another one cannot
    re-derive them and skips."""
    from flashcore_codegen import config_from_name, toolchain
    from flashcore_codegen.render import render
    from flashcore_codegen.space import default_configs

    paths = shipped_module.package_paths()
    assert paths, "the package ships no table"
    defaults = {c.name for c in default_configs()}
    hashes: dict[str, str] = {}
    skipped = []
    for path in paths:
        table = load(path)
        assert table.rows, f"{path.name} holds no rows"
        assert all(shipped_module.file_name_for(r.gpu_name) == path.name for r in table.rows), \
            f"{path.name} holds rows of another GPU model"
        recorded = table.provenance.get("toolchain")
        assert recorded, f"{path.name}'s provenance does not record the toolchain its hashes were derived with"
        if recorded != toolchain.identity():
            skipped.append(f"{path.name}'s hashes were derived with {recorded!r}")
            continue
        assert sorted({r.variant for r in table.rows} - defaults) == [], path.name
        for r in table.rows:
            hashes.setdefault(r.variant, render(config_from_name(r.variant)).source_hash)
        stale = [f"{r.variant} @ {r.problem_key}" for r in table.rows if hashes[r.variant] != r.source_hash]
        assert stale == [], f"{len(stale)} rows of {path.name} hold another source hash than today's sources give"
    if skipped:
        pytest.skip(f"{'; '.join(skipped)}; this machine's toolchain is {toolchain.identity()!r}")


def test_tune_stale_only_keeps_the_problems_without_a_current_row():
    """`flashcore tune --stale-only`: a key with a row current here is left out; a key whose row's
    kernel changed (another hash), a key with only another GPU's row and a key without rows stay."""
    from flashcore_cutlass.tune import lacking_current_rows

    current = Problem("bf16", 128, True, 4, 16, 4096, 4096)
    changed = Problem("bf16", 128, True, 8, 16, 2048, 2048)
    elsewhere = Problem("bf16", 128, True, 16, 16, 1024, 1024)
    absent = Problem("bf16", 128, True, 2, 16, 8192, 8192)
    table = ShippedTable([row(key=str(current.key)), row(key=str(changed.key), source_hash="hash-before-the-change"),
                          row(key=str(elsewhere.key), env=H200)])
    assert lacking_current_rows([current, changed, elsewhere, absent], table, ENV, HASHES) == [changed, elsewhere,
                                                                                              absent]


def test_export_shipped_merge_keeps_the_files_current_rows_of_other_keys(tmp_path, capsys, monkeypatch):
    """After `tune --stale-only`: `--export-shipped --merge` writes the tuned winners and keeps the
    file's rows of other keys that are current here; a row a kernel change left stale is dropped
    (named), never shipped; the provenance says what came from where."""
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    db = tmp_path / "t.db"
    _record(db, FAST, 600.0)  # the re-tuned key
    kept_key, stale_key = "bf16_d128_causal_q1024_k1024_bh256", "bf16_d128_causal_q2048_k2048_bh128"
    out = tmp_path / "tuned_h100.json"
    write_shipped(out, row(OTHER, 900.0), row(OTHER, key=kept_key), row(FAST, key=stale_key, source_hash="older"))
    assert main(["table", "--db", str(db), "--export-shipped", str(out), "--merge"]) == 0
    err = capsys.readouterr().err
    assert f"note: --merge drops 1 measured shapes whose rows in {out.name} are not current here" in err
    assert stale_key in err
    assert "wrote 2 winners" in err
    merged = load(out)
    assert sorted((r.problem_key, r.variant, r.median_us) for r in merged.rows) == \
        [(kept_key, OTHER, 500.0), (KEY, FAST, 600.0)]
    assert "1 kept from the file it replaced (exported at abc123" in merged.provenance["merged"]
    assert merged.provenance["merged_from"] == PROVENANCE  # the replaced file's, as an object
    # --merge belongs to --export-shipped.
    assert main(["table", "--db", str(db), "--merge"]) == 1
    assert "--merge goes with --export-shipped" in capsys.readouterr().err


def test_export_shipped_merge_keep_stale_keeps_the_stale_rows_for_a_resumed_tune(tmp_path, capsys, monkeypatch):
    """A `tune --stale-only` cut short: `--merge --keep-stale` writes the tuned winners, keeps the
    file's current rows and its stale ones as they were (dispatch skips them; the next --stale-only
    tune finds their keys in the file), and says so; without --merge it is refused."""
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    db = tmp_path / "t.db"
    _record(db, FAST, 600.0)
    kept_key, stale_key = "bf16_d128_causal_q1024_k1024_bh256", "bf16_d128_causal_q2048_k2048_bh128"
    out = tmp_path / "tuned_h100.json"
    write_shipped(out, row(OTHER, 900.0), row(OTHER, key=kept_key), row(FAST, key=stale_key, source_hash="older"))
    assert main(["table", "--db", str(db), "--export-shipped", str(out), "--merge", "--keep-stale"]) == 0
    err = capsys.readouterr().err
    assert f"note: --keep-stale keeps 1 measured shapes whose rows in {out.name} are not current here" in err
    assert stale_key in err and "drops" not in err
    merged = load(out)
    assert sorted((r.problem_key, r.variant, r.median_us, r.source_hash) for r in merged.rows) == \
        [(kept_key, OTHER, 500.0, HASHES[OTHER]), (stale_key, FAST, 500.0, "older"), (KEY, FAST, 600.0, HASHES[FAST])]
    assert merged.provenance["merged"].endswith("; 1 stale rows of it kept for a later tune --stale-only")
    # The kept stale row still counts as stale: its key is tuned again.
    from flashcore_cutlass.tune import lacking_current_rows
    stale_problem = Problem("bf16", 128, True, 8, 16, 2048, 2048)
    assert str(stale_problem.key) == stale_key
    assert lacking_current_rows([stale_problem], merged, ENV, HASHES) == [stale_problem]
    assert main(["table", "--db", str(db), "--export-shipped", str(out), "--keep-stale"]) == 1
    assert "--keep-stale goes with --export-shipped --merge" in capsys.readouterr().err


def test_export_shipped_merge_judges_variants_the_build_left_out_by_todays_sources(tmp_path, capsys, monkeypatch):
    """A call that built and tuned only some variants (one head dim's, say) keeps the file's rows of
    the variants it did not build whose hashes today's sources give with the build's toolchain (their
    kernels did not change); such a row whose hash differs is dropped like any stale row."""
    monkeypatch.setattr(cli_module, "_current_identity", lambda: (ENV, HASHES, None))
    same, changed = (PipelinedConfig(dtype="bf16", head_dim=256, causal=True, block_m=64, block_n=n, warps=4,
                                     stages=1).name for n in (32, 64))
    asked = []

    def rendered(names):
        asked.append(set(names))
        return {same: "hash-now", changed: "hash-now"}

    monkeypatch.setattr(cli_module, "_unbuilt_hashes", rendered)
    db = tmp_path / "t.db"
    _record(db, FAST, 600.0)
    same_key, changed_key = "bf16_d256_causal_q1024_k1024_bh128", "bf16_d256_causal_q2048_k2048_bh64"
    out = tmp_path / "tuned_h100.json"
    write_shipped(out, row(OTHER, 900.0), row(same, key=same_key, source_hash="hash-now"),
                  row(changed, key=changed_key, source_hash="hash-before"))
    assert main(["table", "--db", str(db), "--export-shipped", str(out), "--merge"]) == 0
    assert asked == [{same, changed}]  # only the variants the build does not hold
    assert f"drops 1 measured shapes whose rows in {out.name} are not current here" in capsys.readouterr().err
    assert sorted((r.problem_key, r.variant) for r in load(out).rows) == [(KEY, FAST), (same_key, same)]


def test_unbuilt_hashes_render_with_the_builds_toolchain(monkeypatch):
    """The hashes come from today's templates and the toolchain the loaded build records: equal to
    the hash a build with that toolchain gives (render's), for a name that is no variant none; and
    none at all where no build can be loaded."""
    from types import SimpleNamespace

    from flashcore_codegen.render import render

    import flashcore_cutlass.runtime as runtime_module

    config = PipelinedConfig(dtype="bf16", head_dim=128, causal=True, block_m=128, block_n=64, warps=4, stages=2)
    monkeypatch.setattr(runtime_module, "get_runtime", lambda: SimpleNamespace(toolchain_id="nvcc=test"))
    assert cli_module._unbuilt_hashes({config.name, "fc_nothing_at_all"}) == \
        {config.name: render(config, toolchain_id="nvcc=test").source_hash}

    def no_build():
        raise RuntimeError("no flashcore extension")

    monkeypatch.setattr(runtime_module, "get_runtime", no_build)
    assert cli_module._unbuilt_hashes({config.name}) == {}


def test_tune_stale_only_judges_variants_the_build_left_out_by_todays_sources(monkeypatch):
    """`tune --stale-only` with only some variants built (those a kernel change reached) judges the
    shipped rows as --merge does: a row of a variant the build left out is current where today's
    sources give its hash, so its key is not tuned again among the built variants alone."""
    from types import SimpleNamespace

    unbuilt_same, unbuilt_changed = (PipelinedConfig(dtype="bf16", head_dim=256, causal=True, block_m=64, block_n=n,
                                                     warps=4, stages=1).name for n in (32, 64))
    same = Problem("bf16", 128, True, 8, 16, 1024, 1024)
    changed = Problem("bf16", 128, True, 8, 16, 2048, 2048)
    rebuilt = Problem("bf16", 128, True, 4, 16, 4096, 4096)
    table = ShippedTable([row(unbuilt_same, key=str(same.key), source_hash="hash-now", shape=shape_text(same)),
                          row(unbuilt_changed, key=str(changed.key), source_hash="hash-before", shape=shape_text(changed)),
                          row(FAST, key=str(rebuilt.key), source_hash="hash-before", shape=shape_text(rebuilt))])
    monkeypatch.setattr(shipped_module, "default_table", lambda: table)
    asked = []

    def rendered(names):
        asked.append(set(names))
        return {unbuilt_same: "hash-now", unbuilt_changed: "hash-now"}

    monkeypatch.setattr(cli_module, "_unbuilt_hashes", rendered)
    rt = SimpleNamespace(env=ENV, hashes=HASHES)  # FAST built, with another hash than its row's
    assert cli_module._lacking_current_rows([same, changed, rebuilt], rt) == [changed, rebuilt]
    assert asked == [{unbuilt_same, unbuilt_changed}]  # only the variants the build does not hold
