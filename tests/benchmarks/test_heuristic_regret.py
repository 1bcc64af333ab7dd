"""benchmarks/heuristic_regret.py on CPU: parsing a tuning row back into its problem, the
heuristic's pick among measured candidates and its regret, the summary, and the command."""

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import heuristic_regret  # noqa: E402
from flashcore_codegen.families import Sm90Config  # noqa: E402

DECODE_KEY, DECODE_SHAPE = "bf16_d128_full_q4_k32768_bh8", "B1 H8 Sq4 Sk32768"


def sm90(splits, combine=0, m=64, persistent=0):
    return Sm90Config(dtype="bf16", head_dim=128, causal=False, block_m=m, block_n=128, stages=2, schedule=1,
                      persistent=persistent, splits=splits, combine=combine).name


def row(variant, us, key=DECODE_KEY, shape=DECODE_SHAPE, source="tuned"):
    return {"variant": variant, "problem_key": key, "shape": shape, "median_us": us, "source": source}


def test_parse_shape_and_problem_of_a_row():
    assert heuristic_regret.parse_shape("B1 H8 Sq4 Sk32768") == (1, 8, 4, 32768)
    with pytest.raises(ValueError, match="malformed shape"):
        heuristic_regret.parse_shape("B1 H8 Sq4")
    p = heuristic_regret.problem_of(DECODE_KEY, DECODE_SHAPE)
    assert (p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.causal) == (1, 8, 4, 32768, False)
    assert str(p.key) == DECODE_KEY
    # The mask's parameters come back as the key holds them, so the row's key is the problem's.
    for key, shape in [("bf16_d128_causalbrw8192sc_q1_k16384_bh32", "B4 H8 Sq1 Sk16384"),
                       ("fp16_d192v128_causal_q4096_k4096_bh16", "B1 H16 Sq4096 Sk4096"),
                       ("bf16_d128_causalbrg4_q4_k8192_bh32", "B1 H32 Sq4 Sk8192")]:
        assert str(heuristic_regret.problem_of(key, shape).key) == key


def test_regret_is_zero_where_the_heuristic_picks_the_fastest_and_measures_the_gap_otherwise():
    # One sequence's 8 KV heads over 32k keys: the split model takes 16 CTAs a tile through global
    # memory (H200: 37.5 us against 42.3 for 8, tuning_table-2026-11-29T0645-*).
    times = {sm90(16, 1): 37.5, sm90(8, 1): 42.3, sm90(2): 158.0, sm90(1, m=128, persistent=1): 300.0}
    r = heuristic_regret.regret(DECODE_KEY, DECODE_SHAPE, times)
    assert (r["pick"], r["best"], r["regret"], r["splits"], r["candidates"]) == (sm90(16, 1), sm90(16, 1), 0.0, 16, 4)
    slower = dict(times, **{sm90(16, 1): 50.0})  # the pick is now 50 / 42.3 - 1 behind
    r = heuristic_regret.regret(DECODE_KEY, DECODE_SHAPE, slower)
    assert r["pick"] == sm90(16, 1) and r["best"] == sm90(8, 1)
    assert r["regret"] == pytest.approx(50.0 / 42.3 - 1)
    s = heuristic_regret.summary([heuristic_regret.regret(DECODE_KEY, DECODE_SHAPE, times), r])
    assert s["sets"] == 2 and s["picked_the_fastest"] == 1
    assert s["mean_regret"] == pytest.approx((50.0 / 42.3 - 1) / 2) and s["max_regret"] == pytest.approx(50.0 / 42.3 - 1)
    assert heuristic_regret.summary([]) == {"sets": 0, "picked_the_fastest": 0, "mean_regret": 0.0, "max_regret": 0.0}


def test_command_reads_tables_skips_shipped_rows_and_small_sets(tmp_path, capsys):
    rows = [row(sm90(16, 1), 37.5), row(sm90(8, 1), 42.3), row(sm90(2), 158.0), row(sm90(4), 90.0),
            row(sm90(8), 50.0, source="shipped"),  # a shipped winner: not a measured candidate set
            row(sm90(2), 9.0, key="bf16_d128_full_q4_k4096_bh8", shape="B1 H8 Sq4 Sk4096")]  # one candidate
    table = tmp_path / "table.json"
    table.write_text(json.dumps(rows))
    out = tmp_path / "regret.json"
    assert heuristic_regret.main([str(table), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["summary"]["sets"] == 1 and data["rows"][0]["candidates"] == 4
    assert data["rows"][0]["regret"] == 0.0
    assert "1 shapes: the heuristic picked the fastest at 1" in capsys.readouterr().out
    # The shipped table's layout (an object with rows) reads the same; --only-split keeps split shapes.
    (tmp_path / "obj.json").write_text(json.dumps({"rows": rows}))
    assert heuristic_regret.main([str(tmp_path / "obj.json"), "--only-split", "--min-candidates", "1"]) == 0
    assert "2 shapes" in capsys.readouterr().out
