import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flashcore_cutlass.cli import _glob_families, main
from flashcore_codegen.space import all_configs, default_configs, select
from flashcore_cutlass import runtime as runtime_module

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_MATCH = "error: no variant matches these filters (list the valid names with: flashcore codegen --list --all)"


def run_cli(*args, env=None, **kwargs):
    """The installed command line in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "flashcore_cutlass", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env=env, **kwargs)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Keep every command away from the user's cache and build directories."""
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLASHCORE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("FLASHCORE_SHIPPED_TABLE", str(tmp_path / "no-shipped-table.json"))  # not the package's
    monkeypatch.setattr(runtime_module, "_runtime", None)


def test_module_entry_point_help_and_version():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: flashcore")
    for command in ("codegen", "build", "tune", "table", "variants", "doctor"):
        assert command in proc.stdout
    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, "flashcore-cutlass 0.1.0")


def test_codegen_list_family(capsys):
    assert main(["codegen", "--list", "--all", "--family", "mma"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [c.name for c in select(all_configs(family=["mma"]))]  # narrowed as checked in tests/codegen/test_space.py
    assert len(out) == 20
    assert out[0] == "fc_mma_bf16_d128_causal_m128_n64_w4"
    assert all(name.startswith("fc_mma_") for name in out)
    assert "fc_mma_fp16_d256_full_m128_n64_w4" not in out  # invalid: over the register budget


def test_codegen_list_combined_filters(capsys):
    assert main(["codegen", "--list", "--all", "--family", "scalar", "--dtype", "bf16", "--head-dim", "128",
                 "--causal"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc_scalar_bf16_d128_causal_m16_w4",
        "fc_scalar_bf16_d128_causal_m32_w4",
    ]
    assert main(["codegen", "--list", "--all", "--only", "fc_pipelined_fp16_d64_full_m64_*_s1_lean0",
                 "--no-causal"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc_pipelined_fp16_d64_full_m64_n128_w4_s1_lean0",
        "fc_pipelined_fp16_d64_full_m64_n32_w4_s1_lean0",
        "fc_pipelined_fp16_d64_full_m64_n64_w4_s1_lean0",
    ]


def test_codegen_writes_then_reports_unchanged(tmp_path, capsys):
    out = tmp_path / "src"
    args = ["codegen", "--all", "--out", str(out), "--family", "scalar", "--dtype", "fp16", "--head-dim", "64"]
    assert main(args) == 0
    assert capsys.readouterr().out == f"4 variants in {out}: 4 written, 0 unchanged\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "fc_scalar_fp16_d64_causal_m16_w4.cu",
        "fc_scalar_fp16_d64_causal_m32_w4.cu",
        "fc_scalar_fp16_d64_full_m16_w4.cu",
        "fc_scalar_fp16_d64_full_m32_w4.cu",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out == f"4 variants in {out}: 0 written, 4 unchanged\n"


def test_codegen_default_out_is_build_dir_src(tmp_path, capsys):
    assert main(["codegen", "--only", "fc_scalar_fp16_d64_full_m16_w4"]) == 0
    out = tmp_path / "build" / "src"
    assert capsys.readouterr().out == f"1 variants in {out}: 1 written, 0 unchanged\n"
    assert (out / "fc_scalar_fp16_d64_full_m16_w4.cu").exists()


@pytest.mark.parametrize(
    "filters",
    [
        ["--all", "--only", "fc_nothing_*"],
        ["--all", "--family", "scalar", "--only", "fc_mma_*"],
        ["--all", "--family", "mma", "--head-dim", "256", "--only", "*_m128_*"],  # exists, but invalid
    ],
)
def test_codegen_filters_matching_nothing(filters, tmp_path, capsys):
    assert main(["codegen", "--out", str(tmp_path / "src"), *filters]) == 1
    assert capsys.readouterr().err.strip() == NO_MATCH
    assert not (tmp_path / "src").exists()


def test_filters_narrow_the_default_set_and_all_widens(capsys):
    assert main(["codegen", "--list", "--head-dim", "128"]) == 0
    narrowed = capsys.readouterr().out.split()
    assert narrowed == sorted(c.name for c in default_configs() if c.head_dim == 128)
    assert main(["codegen", "--list", "--all", "--head-dim", "128"]) == 0
    widened = capsys.readouterr().out.split()
    assert set(narrowed) < set(widened)
    assert len(widened) == len(list(all_configs(head_dim=[128])))


@pytest.mark.parametrize("globs, family, families", [
    ([], None, None),
    ([], ["mma"], ["mma"]),
    (["fc_mma_*"], None, ["mma"]),
    (["fc_mma_*", "fc_sm90_bf16_*"], None, ["mma", "sm90"]),
    (["fc_mma_*", "*_m128_*"], None, None),  # the second leaves the family open
    (["fc_sm9?_*"], ["mma"], ["mma"]),
    (["fc_mma_*"], ["scalar"], []),  # nothing passes both
    (["fc_nothing_*"], None, ["nothing"]),
])
def test_globs_narrow_the_families_enumerated(globs, family, families):
    assert _glob_families(globs, family) == families


def test_glob_outside_the_default_set_says_to_add_all(capsys):
    assert main(["codegen", "--list", "--only", "fc_pipelined_*_s1_lean0", "--head-dim", "64"]) == 1
    assert "the default set has none, the whole valid space has some: add --all" in capsys.readouterr().err


def test_exact_name_is_taken_as_named(capsys):
    name = "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean1"  # valid, not in the default set
    assert name not in {c.name for c in default_configs()}
    assert main(["codegen", "--list", "--only", name]) == 0
    assert capsys.readouterr().out.split() == [name]


@pytest.mark.parametrize("name, reason", [
    ("fc_mma_fp16_d256_full_m128_n64_w4", "fp32 accumulator registers per thread > 192"),
    ("fc_conv_fp16_d64_full_m16_w4", "unknown kernel family 'conv'"),
    ("fc_scalar_fp16_d64_full_m16", "has 1 tile tokens, family scalar needs 2"),
])
def test_named_invalid_variant_gets_its_reason(name, reason, capsys):
    assert main(["build", "--dry-run", "--only", name]) == 1
    err = capsys.readouterr().err
    assert reason in err and len(err.strip().splitlines()) == 1


def test_unknown_family_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["codegen", "--list", "--family", "conv"])
    assert excinfo.value.code == 2
    assert "invalid choice: 'conv'" in capsys.readouterr().err


def test_build_with_impossible_filter_exits_nonzero(tmp_path, capsys):
    build_dir = tmp_path / "b"
    assert main(["build", "--no-link", "--build-dir", str(build_dir), "--only", "fc_nothing_*"]) == 1
    assert capsys.readouterr().err.strip() == NO_MATCH
    assert not build_dir.exists()
    proc = run_cli("build", "--no-link", "--build-dir", str(build_dir), "--only", "fc_nothing_*")
    assert proc.returncode == 1
    assert proc.stderr.strip() == NO_MATCH  # one message: no warnings, no traceback
    assert not build_dir.exists()


@pytest.mark.parametrize("jobs", ["0", "-3", "two"])
def test_build_rejects_bad_job_counts(jobs, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["build", "--dry-run", "-j", jobs])
    assert excinfo.value.code == 2
    assert "argument -j/--jobs" in capsys.readouterr().err


def test_build_dry_run_lists_estimates_and_builds_nothing(tmp_path, capsys):
    build_dir = tmp_path / "b"
    assert main(["build", "--dry-run", "-j", "4", "--build-dir", str(build_dir), "--head-dim", "256"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [c for c in default_configs() if c.head_dim == 256]
    assert lines[:-1] == [f"{c.name}  compile" for c in sorted(expected, key=lambda c: c.name)]
    minutes = sum(c.build_seconds() for c in expected) / 4 / 60
    assert lines[-1].startswith(f"{len(expected)} variants selected, {len(expected)} to compile: "
                                f"about {minutes:.1f} min with 4 jobs")
    assert lines[-1].endswith("nothing was built")
    assert not build_dir.exists()


def test_tune_rejects_bad_shape(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["tune", "--shape", "1,2,3"])
    assert excinfo.value.code == 2
    assert "shape must be B,H,Sq,Sk (e.g. 4,16,4096,4096), got '1,2,3'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--head-dim", "--head-dim-v"])
@pytest.mark.parametrize("dim,message", [("100", "head dims are multiples of 8 up to 256, got 100"),
                                         ("264", "head dims are multiples of 8 up to 256, got 264"),
                                         ("0", "must be at least 1, got 0")])
def test_tune_rejects_a_head_dim_attention_does_not_take(capsys, flag, dim, message):
    with pytest.raises(SystemExit) as excinfo:
        main(["tune", "--shape", "1,2,64,64", flag, dim])
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_tune_rejects_a_bad_warmup(capsys, value):
    with pytest.raises(SystemExit) as excinfo:
        main(["tune", "--warmup-ms", value])
    assert excinfo.value.code == 2
    assert "--warmup-ms" in capsys.readouterr().err


def test_tune_head_dim_v_needs_shapes(capsys):
    """Checked before anything loads (no runtime, no GPU needed)."""
    assert main(["tune", "--head-dim-v", "128"]) == 2
    assert "--head-dim-v, --bottom-right, --window and --softcap need --shape" in capsys.readouterr().err
    for flags in (["--bottom-right"], ["--window", "4096"], ["--softcap", "30"]):
        assert main(["tune", *flags]) == 2
        assert "need --shape" in capsys.readouterr().err
    assert main(["tune", "--shape", "1,8,64,8192", "--bottom-right", "--no-causal"]) == 2
    assert "drop --no-causal" in capsys.readouterr().err


def test_table_json_on_empty_table_without_gpu(tmp_path, capsys):
    db = tmp_path / "tmp.db"
    assert main(["table", "--db", str(db), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "[]\n"
    assert json.loads(captured.out) == []
    assert "note: cannot tell current rows from stale ones (no flashcore extension at" in captured.err
    assert db.exists()


def test_table_json_lists_rows(tmp_path, capsys):
    from flashcore_cutlass.env import Environment
    from flashcore_cutlass.problem import ProblemKey
    from flashcore_cutlass.table import TuningTable

    db = tmp_path / "tmp.db"
    env = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
    TuningTable(db).record("fc_mma_bf16_d128_full_m64_n64_w4", ProblemKey("bf16", 128, False, 4096, 4096, 64),
                           shape="B4 H16 Sq4096 Sk4096", median_us=812.5, spread_us=2.0, tflops=338.0,
                           samples=50, max_abs_err=1e-3, env=env, source_hash="abcd")
    assert main(["table", "--db", str(db), "--json", "--all"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [(r["variant"], r["median_us"], r["source_hash"], r["winner"]) for r in rows] == [
        ("fc_mma_bf16_d128_full_m64_n64_w4", 812.5, "abcd", True)
    ]
    assert captured.err == ""  # --all: no note about staleness

    assert main(["table", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["key", "shape", "variant", "median_us", "spread_us", "TFLOP/s", "max_err", "win", "stale",
                                "source", "gpu", "measured_at"]
    assert "fc_mma_bf16_d128_full_m64_n64_w4" in lines[1] and "812.5" in lines[1] and " tuned " in lines[1]
    assert lines[1].split()[1] == "B4_H16_Sq4096_Sk4096"  # one word a cell
    assert f"1 tuned rows from {db}; 0 shipped rows from " in captured.err


def test_variants_reads_manifest(tmp_path, capsys):
    build_dir = tmp_path / "b"
    assert main(["variants", "--build-dir", str(build_dir)]) == 1
    assert capsys.readouterr().err.strip() == f"error: nothing is built in {build_dir}: run flashcore build (or pass --build-dir)"
    build_dir.mkdir()
    (build_dir / "manifest.json").write_text(json.dumps({
        "extension": None,
        "variants": {"fc_scalar_fp16_d64_full_m16_w4": {"source_hash": "aa", "registers": 44,
                                                        "spill_stores": 0, "spill_loads": 0},
                     "fc_mma_fp16_d64_full_m64_n64_w4": {"source_hash": "bb", "registers": 96,
                                                         "spill_stores": 4, "spill_loads": 4}},
        "failed": ["fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean0"],
    }))
    assert main(["variants", "--build-dir", str(build_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc_mma_fp16_d64_full_m64_n64_w4  hash bb  96 registers, spills 4 B (spills 4 B; the ladder's step-2 rung, "
        "built to be measured, never to win)",
        "fc_scalar_fp16_d64_full_m16_w4  hash aa  44 registers, no spills",
        "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean0  FAILED to compile",
    ]


def _table_with_rows(db, n=3):
    from flashcore_cutlass.env import Environment
    from flashcore_cutlass.problem import ProblemKey
    from flashcore_cutlass.table import TuningTable

    env = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
    table = TuningTable(db)
    for i in range(n):
        table.record(f"fc_mma_bf16_d128_full_m64_n64_w{i}", ProblemKey("bf16", 128, False, 4096, 4096, 64),
                     shape="B4 H16 Sq4096 Sk4096", median_us=100.0 + i, spread_us=1.0, tflops=300.0 - i,
                     samples=10, max_abs_err=1e-3, env=env, source_hash="abcd")
    return table


@pytest.mark.parametrize("sort, first", [("-median_us", "w2"), ("median_us", "w0"), ("TFLOP/s", "w2"),
                                         ("-TFLOP/s", "w0"), ("key", "w0")])
def test_table_sort_takes_the_shown_columns_and_a_minus(sort, first, tmp_path, capsys):
    db = tmp_path / "t.db"
    _table_with_rows(db)
    assert main(["table", "--db", str(db), "--all", "--sort", sort]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[2].endswith(first)


def test_table_sort_by_an_unknown_column_is_a_message(tmp_path, capsys):
    db = tmp_path / "t.db"
    _table_with_rows(db)
    assert main(["table", "--db", str(db), "--all", "--sort", "bogus"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot sort by 'bogus'") and "Traceback" not in err


def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m flashcore_cutlass codegen --list --all | head -1", shell=True,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout.startswith("fc_")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_tune_without_gpu_or_build_is_one_message(tmp_path):
    env = dict(os.environ, FLASHCORE_CACHE_DIR=str(tmp_path / "c"), FLASHCORE_BUILD_DIR=str(tmp_path / "b"))
    proc = run_cli("tune", "--suite", "small", env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "flashcore build" in proc.stderr or "GPU" in proc.stderr


def test_cache_dir_under_a_regular_file_is_one_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = dict(os.environ, FLASHCORE_CACHE_DIR=str(blocker / "cache"), FLASHCORE_BUILD_DIR=str(blocker / "build"))
    for args in (["table"], ["build", "--no-link", "--only", "fc_scalar_fp16_d64_full_m16_w4"]):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert str(blocker) in proc.stderr and "FLASHCORE_CACHE_DIR" in proc.stderr, proc.stderr


def test_garbage_tuning_db_is_moved_aside(tmp_path):
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "tuning.db").write_bytes(b"this is not a database" * 100)
    env = dict(os.environ, FLASHCORE_CACHE_DIR=str(cache), FLASHCORE_BUILD_DIR=str(tmp_path / "b"))
    proc = run_cli("table", "--all", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(cache.glob("tuning.db.corrupt-*")), "the corrupt file was not kept aside"
    assert "corrupt" in proc.stderr


def test_doctor_reports_without_gpu(tmp_path):
    env = dict(os.environ, FLASHCORE_CACHE_DIR=str(tmp_path / "c"), FLASHCORE_BUILD_DIR=str(tmp_path / "b"))
    proc = run_cli("doctor", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("flashcore-cutlass 0.1.0")
    for needle in ("torch:", "nvcc", "CUTLASS", "build dir:", "variants built: 0", "tuning table:"):
        assert needle in out, (needle, out)
    assert "section failed" not in out, out


@pytest.mark.parametrize("environ,line", [
    ({}, "programmatic dependent launch (sm90): on (FLASHCORE_PDL unset)"),
    ({"FLASHCORE_PDL": "0"}, "programmatic dependent launch (sm90): off (FLASHCORE_PDL=0)"),
    ({"FLASHCORE_PDL": "yes"}, "programmatic dependent launch (sm90): FLASHCORE_PDL must be 0 or 1, got 'yes'"),
])
def test_doctor_reports_programmatic_launch(environ, line):
    from flashcore_cutlass import doctor

    (got,) = doctor._launch_lines(environ)
    assert got.startswith(line)


@pytest.mark.parametrize("flags, message", [
    (["--softcap", "0"], "must be above 0 and finite, got 0"), (["--softcap", "inf"], "must be above 0 and finite"),
    (["--softcap", "nan"], "must be above 0 and finite"), (["--softcap", "x"], "expected a number, got 'x'"),
    (["--window", "-1"], "must be at least 0, got -1"), (["--window", "1.5"], "expected a whole number, got '1.5'"),
])
def test_tune_rejects_bad_mask_parameters(capsys, flags, message):
    with pytest.raises(SystemExit) as excinfo:
        main(["tune", "--shape", "1,8,64,8192", *flags])
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_tune_heads_k_needs_shapes_it_divides(capsys):
    """Checked before anything loads (no runtime, no GPU needed)."""
    assert main(["tune", "--heads-k", "8"]) == 2
    assert "--heads-k needs --shape" in capsys.readouterr().err
    assert main(["tune", "--shape", "1,32,1,8192", "--shape", "1,12,1,8192", "--heads-k", "8"]) == 2
    assert "--heads-k 8 must divide the query heads H of every --shape, not 12" in capsys.readouterr().err


def test_tune_heads_k_tunes_decoding_as_dispatch_packs_it(capsys):
    from flashcore_cutlass.cli import _as_dispatched
    from flashcore_cutlass.problem import Problem

    decoding = Problem("bf16", 128, True, 1, 32, 1, 8192, bottom_right=True, window=(4096, 0))
    packed = _as_dispatched(decoding, 8)
    assert packed == Problem("bf16", 128, False, 1, 8, 4, 4097)
    assert "runs packed: tuning bf16 B1 H8 Sq4 Sk4097 D128 full (key bf16_d128_full_q4_k8192_bh8)" in \
        capsys.readouterr().err
    prefill = Problem("bf16", 128, True, 1, 32, 4096, 4096)
    gqa = _as_dispatched(prefill, 8)  # nothing to pack: the per-head kernels map the K/V heads
    assert gqa == Problem("bf16", 128, True, 1, 32, 4096, 4096, heads_kv=8)
    assert str(gqa.key) == "bf16_d128_causalgqa4_q4096_k4096_bh32"
    assert _as_dispatched(prefill, 32) == prefill  # as many K/V heads as query heads: MHA's key


def test_every_tune_suite_names_a_function_of_the_tune_module():
    """The parser's --suite choices come from cli.TUNE_SUITES; each must list problems."""
    from flashcore_cutlass import cli, tune

    for name, function in cli.TUNE_SUITES.items():
        problems = getattr(tune, function)()
        assert problems and all(hasattr(p, "key") for p in problems), name
