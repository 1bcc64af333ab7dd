import json
import subprocess
import sys
from pathlib import Path

import pytest

from flashcore_codegen.cli import main
from flashcore_codegen.space import all_configs, select
from flashcore_cutlass import runtime as runtime_module

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_MATCH = "no valid variant matches these filters (see `flashcore codegen --list --all`)"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Keep every command away from the user's cache and build directories."""
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLASHCORE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(runtime_module, "_runtime", None)


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "flashcore_cutlass", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: flashcore")
    for command in ("codegen", "build", "tune", "table", "variants"):
        assert command in proc.stdout


def test_codegen_list_family(capsys):
    assert main(["codegen", "--list", "--family", "mma"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [c.name for c in select(all_configs(), family=["mma"])]
    assert len(out) == 20
    assert out[0] == "fc_mma_bf16_d128_causal_m128_n64_w4"
    assert all(name.startswith("fc_mma_") for name in out)
    assert "fc_mma_fp16_d256_full_m128_n64_w4" not in out  # invalid: over the register budget


def test_codegen_list_combined_filters(capsys):
    assert main(["codegen", "--list", "--family", "scalar", "--dtype", "bf16", "--head-dim", "128",
                 "--causal"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc_scalar_bf16_d128_causal_m16_w4",
        "fc_scalar_bf16_d128_causal_m32_w4",
    ]
    assert main(["codegen", "--list", "--only", "fc_pipelined_fp16_d64_full_m64_*_s1_lean0", "--no-causal"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fc_pipelined_fp16_d64_full_m64_n128_w4_s1_lean0",
        "fc_pipelined_fp16_d64_full_m64_n32_w4_s1_lean0",
        "fc_pipelined_fp16_d64_full_m64_n64_w4_s1_lean0",
    ]


def test_codegen_writes_then_reports_unchanged(tmp_path, capsys):
    out = tmp_path / "src"
    args = ["codegen", "--out", str(out), "--family", "scalar", "--dtype", "fp16", "--head-dim", "64"]
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
        ["--only", "fc_nothing_*"],
        ["--family", "scalar", "--only", "fc_mma_*"],
        ["--family", "mma", "--head-dim", "256", "--only", "*_m128_*"],  # exists, but invalid
    ],
)
def test_codegen_filters_matching_nothing(filters, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        main(["codegen", "--out", str(tmp_path / "src"), *filters])
    assert excinfo.value.code == NO_MATCH
    assert not (tmp_path / "src").exists()


def test_unknown_family_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["codegen", "--list", "--family", "conv"])
    assert excinfo.value.code == 2
    assert "invalid choice: 'conv'" in capsys.readouterr().err


def test_build_with_impossible_filter_exits_nonzero(tmp_path):
    build_dir = tmp_path / "b"
    with pytest.raises(SystemExit) as excinfo:
        main(["build", "--no-link", "--build-dir", str(build_dir), "--only", "fc_nothing_*"])
    assert excinfo.value.code == NO_MATCH  # a string code: printed to stderr, exit status 1
    assert not build_dir.exists()
    proc = subprocess.run([sys.executable, "-m", "flashcore_cutlass", "build", "--no-link", "--build-dir", str(build_dir),
                           "--only", "fc_nothing_*"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == NO_MATCH
    assert not build_dir.exists()


def test_tune_rejects_bad_shape(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["tune", "--shape", "1,2,3"])
    assert excinfo.value.code == 2
    assert "shape must be B,H,Sq,Sk (e.g. 4,16,4096,4096), got '1,2,3'" in capsys.readouterr().err


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
    assert lines[0].split() == ["key", "variant", "median_us", "spread_us", "TFLOP/s", "max_err", "win", "stale",
                                "gpu", "measured_at"]
    assert "fc_mma_bf16_d128_full_m64_n64_w4" in lines[1] and "812.5" in lines[1]
    assert f"1 rows from {db}" in captured.err


def test_variants_reads_manifest(tmp_path, capsys):
    build_dir = tmp_path / "b"
    assert main(["variants", "--build-dir", str(build_dir)]) == 0
    assert capsys.readouterr().out == ""
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
        "fc_mma_fp16_d64_full_m64_n64_w4  hash bb  96 registers, spills 4 B",
        "fc_scalar_fp16_d64_full_m16_w4  hash aa  44 registers, no spills",
        "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean0  FAILED to compile",
    ]
