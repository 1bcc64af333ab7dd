"""benchmarks/experiments/unpicked_defaults.py on CPU: every sm90 default earns its build time (the
5-minute bound on the default set): the heuristic picks it for some problem of the sweep, or a shipped
row names it or its dtype twin."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks" / "experiments"))
import unpicked_defaults  # noqa: E402


def test_every_sm90_default_is_picked_or_shipped():
    idle, picks, rows = unpicked_defaults.unpicked(sorted(unpicked_defaults.PACKAGE_TABLES.glob("tuned_*.json")))
    assert idle == [], f"defaults that serve no call: drop them from DEFAULT_TILES or ship their rows: {idle}"
    assert picks and rows  # the sweep and the tables were read


def test_a_tile_no_row_names_and_the_heuristic_never_picks_is_reported(tmp_path):
    # Only the table's rows keep the D64 three-CTA tile with three K/V slots (the heuristic prefers two slots):
    # without them it is idle.
    table = tmp_path / "tuned_empty.json"
    table.write_text('{"rows": []}')
    idle, _, _ = unpicked_defaults.unpicked([table])
    assert "fc_sm90_bf16_d64_causal_m64_n64_s3_sch1_p1_kv1_c3_lr1" in idle
    assert "fc_sm90_bf16_d64_causal_m64_n64_s2_sch1_p1_kv1_c3_lr1" not in idle  # the heuristic's pick


def test_dtype_twins_share_rows():
    assert unpicked_defaults.twin("fc_sm90_fp16_d256_full_m128_n80_s2_sch1_p1_kv1_lr1") == \
        "fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1_lr1"
