"""benchmarks/cap_bound.py on CPU: the FLOP counts, a row's medians and work per clock, the shares of the
GEMM rate, the power limit's parsing, and the report built from a result of the shape main writes."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import cap_bound as cb  # noqa: E402


def test_flops_are_the_grids_and_a_square_gemms():
    assert cb.gemm_flops(8192) == 2 * 8192 ** 3
    # The grid's 16k D128 cell: 4 * H * S^2 * D with H = 2048 / D.
    assert cb.attention_flops(16, 16384, 128) == 4 * 16 * 16384 ** 2 * 128
    assert cb.tflops(2e6, 2.0) == pytest.approx(1.0)


def test_a_row_takes_medians_and_its_work_per_clock():
    states = [{"sm_clock_mhz": 1500.0, "power_w": 690.0}, {"sm_clock_mhz": 1600.0, "power_w": 700.0},
              {"sm_clock_mhz": 1700.0, "power_w": 680.0}]
    row = cb.summarise("x", 2e6, [3.0, 1.0, 2.0], states)
    assert row["us"] == 2.0 and row["tflops"] == pytest.approx(1.0)
    assert row["sm_clock_mhz"] == 1600.0 and row["power_w"] == 690.0
    assert row["tflops_per_ghz"] == pytest.approx(1.0 / 1.6)
    assert row["pj_per_flop"] == pytest.approx(690.0)  # 690 W at 1 TFLOP/s
    unread = cb.summarise("y", 2e6, [2.0], [{}])  # nvidia-smi unreadable: no clock, no work per clock
    assert unread["sm_clock_mhz"] is None and unread["tflops_per_ghz"] is None and unread["pj_per_flop"] is None


def test_shares_put_rows_and_targets_against_the_fastest_gemm():
    rows = {"gemm 8192": {"tflops": 800.0}, "gemm 16384": {"tflops": 760.0}, "flashcore d128": {"tflops": 640.0}}
    assert cb.gemm_name(8192) == "gemm 8192"
    assert cb.best_gemm(rows) == "gemm 8192"
    s = cb.shares(rows, rows[cb.best_gemm(rows)]["tflops"])
    assert s["gemm 8192"] == 1.0 and s["gemm 16384"] == pytest.approx(0.95) and s["flashcore d128"] == pytest.approx(0.8)
    assert s["target d128"] == pytest.approx(660.0 / 800.0)
    assert set(s) == {"gemm 8192", "gemm 16384", "flashcore d128", "target d64", "target d128", "target d256"}


def test_power_limit_is_read_or_none():
    ok = lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout="700.00\n")  # noqa: E731
    assert cb.power_limit_w(run=ok) == 700.0
    def broken(*a, **k):
        raise OSError("no nvidia-smi")
    assert cb.power_limit_w(run=broken) is None


def test_report_names_every_row_and_target():
    rows = {"gemm 8192": cb.summarise("gemm 8192", 2e12, [2500.0], [{"sm_clock_mhz": 1700.0, "power_w": 695.0}]),
            "flashcore d128": cb.summarise("flashcore d128", 2.2e12, [3400.0], [{}])}
    result = {"rows": rows, "best_gemm": "gemm 8192", "shares": cb.shares(rows, rows["gemm 8192"]["tflops"]),
              "power_limit_w": 700.0, "gemm_n": [8192], "rounds": 3, "warmup_ms": 500.0}
    text = cb.report(result)
    assert "flashcore d128" in text and "gemm 8192" in text and "Power limit 700.0 W" in text
    assert "D128 660 TFLOP/s" in text and "1700 MHz" in text and "8192^3" in text


def test_variants_parse_as_head_dim_and_name():
    assert cb.parse_variants(["128=fc_a", " 64 = fc_b "]) == {128: "fc_a", 64: "fc_b"}
    assert cb.parse_variants([]) == {}
    for bad in ("fc_a", "x=fc_a", "128="):
        with pytest.raises(SystemExit, match="D=NAME"):
            cb.parse_variants([bad])
