"""benchmarks/target_bounds.py on CPU: the FLOP counts and needed rates, the full-card shapes, which rows
carry issue 8's ratio target, and the report built from a result of the shape main writes."""

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import target_bounds as tb  # noqa: E402


def test_attention_flops_counts_both_gemms_over_the_visible_pairs():
    # The grid's convention: 4 * B * H * S^2 * D for an unmasked square problem.
    assert tb.attention_flops(2, 16, 1024 * 1024, 128) == 4 * 2 * 16 * 1024 * 1024 * 128
    assert tb.attention_flops(1, 1, 10, 192, 128) == 2 * 10 * (192 + 128)


def test_needed_rate_subtracts_the_floor_and_is_infinite_without_time_left():
    assert tb.needed_tflops(1e12, 1e6) == pytest.approx(1.0)  # 1 TFLOP in 1 s
    assert tb.needed_tflops(1e6, 2.0, 1.0) == pytest.approx(1e6 / 1e6)  # 1 us left: 1 TFLOP/s
    assert tb.needed_tflops(1e6, 1.0, 1.0) == math.inf
    assert tb.needed_tflops(1e6, 1.0, 1.5) == math.inf
    assert tb.tflops(2e6, 2.0) == pytest.approx(1.0)


def test_the_full_card_shape_is_the_fa3_grids():
    assert tb.full_card_shape(512, 64) == (32, 32)
    assert tb.full_card_shape(1024, 128) == (16, 16)
    assert tb.full_card_shape(16384, 256) == (1, 8)
    assert tb.full_card_shape(65536, 4096) == (1, 1)


def test_ratio_rows_are_every_small_shape_but_the_seeds():
    rows = tb.ratio_target_shapes()
    assert tb.SEED not in rows
    assert ("bf16", (1, 8, 512, 64)) in rows  # the seed's shape in bf16 has the ratio target
    assert ("fp16", (2, 16, 1024, 128)) in rows and ("bf16", (2, 16, 1024, 128)) in rows
    assert len(rows) == 11


def test_mistral_case_is_the_models_benchmarks():
    b, hq, hkv, s, d, window, _cap, _dv = tb.MODEL_PREFILL[tb.MISTRAL]
    assert (hq, hkv, s, d, window) == (32, 8, 8192, 128, (4096, 0))
    share = tb.visible_pairs(s, window) / tb.visible_pairs(s, None)
    assert 0.74 < share < 0.76  # the window keeps three quarters of causal's pairs


def result():
    row = {"dtype": "bf16", "shape": [2, 16, 1024, 128], "graph_us": {"flashcore": 29.9, "sdpa": 32.3},
           "ratio_graph": 0.926, "target_us": 22.6, "needed_tflops": 800.0, "full_card_shape": [16, 16, 1024, 128],
           "full_card_us": {"flashcore": 270.0, "sdpa": 280.0},
           "full_card_tflops": {"flashcore": 515.0, "sdpa": 492.0}, "needs_x_best_full_card_rate": 800 / 515}
    one = {"dtype": "fp16", "shape": [1, 1, 64, 64], "graph_us": {"fc_sm90_a": 3.1, "sdpa": 4.0},
           "fastest_variant": "fc_sm90_a", "eager_us": {"fc_sm90_a": 7.0, "sdpa": 8.0}}
    seed = {"seed": {"dtype": "fp16", "shape": [1, 8, 512, 64], "graph_us": {"flashcore": 5.4, "sdpa": 9.1}},
            "floors": {"eager_us": 4.3, "graph_us": 1.17}, "budget_over_floor_us": {"graph": 2.83, "eager": 1.7},
            "one_tile": one}
    mistral = {"case": tb.MISTRAL, "us": {"flashcore window": 725.0, "sdpa full causal": 1054.0},
               "window_vs_sdpa_full_causal": 0.688, "window_pairs_share_of_causal": 0.75, "window_tflops": 570.0,
               "needed_tflops": 652.0, "unmasked_tflops": {"flashcore unmasked": 630.0, "sdpa unmasked": 592.0},
               "needs_x_best_unmasked_rate": 652 / 630}
    return {"ratio_rows": [row], "seed": seed, "mistral": mistral}


def test_report_names_each_targets_bound():
    text = tb.report(result())
    assert "2,16,1024,128" in text and "1.55x" in text  # 800 / 515
    assert "sm90_a graph 3.10" in text and "budget over the floor: graph 2.83" in text
    assert "needs 652" in text and "needs 1.03x the best" in text
