"""benchmarks/rekey_shipped.py on CPU: which variant a mangled sm90 kernel name is, and which shipped
rows move to the current hash (their kernel's SASS unchanged) or stay stale (it changed)."""

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import rekey_shipped  # noqa: E402
from flashcore_codegen import config_from_name  # noqa: E402

# Kernel names as `cuobjdump -sass` printed them for builds of 2026-11-27.
GLOBAL_COMBINE = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_6TraitsIN7cutlass10bfloat16_tELi128ELi64ELi128"
                  "ELi2ELi1ELb0ELb1ELb0ELb0ELi8ELi1EEENS0_16MainloopTmaWgmmaIS6_EENS0_19EpilogueSplitGlobalIS6_EENS0_26"
                  "SplitKvGlobalTileSchedulerILb0ELi8EEEEEEEvNT_6ParamsE")
ZERO_COUNTERS = GLOBAL_COMBINE.replace("12kernel_entry", "19zero_split_counters")
PACKED_GLOBAL_COMBINE = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_13PackGqaTraitsINS0_6TraitsIN7cutlass10"
                         "bfloat16_tELi128ELi64ELi128ELi2ELi1ELb1ELb1ELb0ELb0ELi8ELi1EEEEENS0_16MainloopTmaWgmmaIS8_EENS0"
                         "_19EpilogueSplitGlobalIS8_EENS0_26SplitKvGlobalTileSchedulerILb1ELi8EEEEEEEvNT_6ParamsE")

KEY_SPLIT = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_14KeySplitTraitsINS0_6TraitsIN7cutlass6half_tELi64ELi64"
             "ELi128ELi4ELi1ELb0ELb1ELb0ELb0ELi1ELi1EEELi2EEENS0_16MainloopTmaWgmmaIS8_EENS0_16EpilogueKeySplitIS8_EENS0_18"
             "PlainTileSchedulerILb0EEEEEEEvNT_6ParamsE")
# A lazy-rescale variant (traits.cuh's LazyRescaleTraits wraps its Traits).
LAZY = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_17LazyRescaleTraitsINS0_6TraitsIN7cutlass10bfloat16_tELi64"
        "ELi128ELi128ELi2ELi2ELb1ELb1ELb1ELb1ELi1ELi1EEEEENS0_16MainloopTmaWgmmaIS8_EENS0_16EpilogueTmaStoreIS8_EENS0_30"
        "DynamicPersistentTileSchedulerILb1ELi8EEEEEEEvNT_6ParamsE")

# A stream-K variant (stream_k.cuh's StreamKTraits wraps the lazy traits), as built on 2026-11-29.
STREAM_K = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_13StreamKTraitsINS0_17LazyRescaleTraitsINS0_6TraitsIN7cutla"
            "ss10bfloat16_tELi128ELi128ELi128ELi2ELi2ELb0ELb1ELb0ELb1ELi1ELi1EEEEEEENS0_16MainloopTmaWgmmaISA_EENS0_15Epilo"
            "gueStreamKISA_EENS0_20StreamKTileSchedulerILi128ELi128ELi8EEEEEEEvNT_6ParamsE")

# A per-warpgroup key range variant (traits.cuh's WgKeyTraits wraps the lazy traits), as built on 2026-11-29.
WG_KEYS = ("_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_11WgKeyTraitsINS0_17LazyRescaleTraitsINS0_6TraitsIN7cutla"
           "ss10bfloat16_tELi256ELi128ELi64ELi2ELi2ELb1ELb1ELb0ELb1ELi1ELi1EEEEEEENS0_16MainloopTmaWgmmaISA_EENS0_16Epil"
           "ogueTmaStoreISA_EENS0_30DynamicPersistentTileSchedulerILb1ELi8ELb0EEEEEEEvNT_6ParamsE")

def _name(elem, d, bm, bn, causal, overlap, pingpong, persistent, splits, ctas, epilogue="EpilogueTmaStore"):
    traits = (f"TraitsIN7cutlass{len(elem)}{elem}ELi{d}ELi{bm}ELi{bn}ELi2ELi{bm // 64}ELb{causal}ELb{overlap}"
              f"ELb{pingpong}ELb{persistent}ELi{splits}ELi{ctas}EE")
    return f"_ZN9flashcore4sm9012kernel_entryINS0_8KernelWSINS0_6{traits}ENS0_16MainloopTmaWgmmaIS6_EENS0_X{epilogue}"


@pytest.mark.parametrize("kernel, variant", [
    (GLOBAL_COMBINE, "fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8_g1"),
    (PACKED_GLOBAL_COMBINE, "fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv8_g1_pq1"),
    (KEY_SPLIT, "fc_sm90_fp16_d64_full_m64_n128_s4_sch1_p0_kv1_ks2"),
    (LAZY, "fc_sm90_bf16_d64_causal_m128_n128_s2_sch2_p1_kv1_lr1"),
    (STREAM_K, "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1_lr1_sk1"),
    (WG_KEYS, "fc_sm90_bf16_d256_causal_m128_n64_s2_sch1_p1_kv1_lr1_wk1"),
    (_name("half_t", 64, 128, 128, 1, 1, 1, 1, 1, 1), "fc_sm90_fp16_d64_causal_m128_n128_s2_sch2_p1_kv1"),
    (_name("bfloat16_t", 64, 64, 128, 0, 1, 0, 1, 1, 2), "fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p1_kv1_c2"),
    (_name("bfloat16_t", 256, 64, 64, 0, 1, 0, 0, 4, 1, "EpilogueSplitCombine"),
     "fc_sm90_bf16_d256_full_m64_n64_s2_sch1_p0_kv4"),
    (_name("half_t", 128, 128, 64, 0, 0, 0, 0, 1, 1), "fc_sm90_fp16_d128_full_m128_n64_s2_sch0_p0_kv1"),
])
def test_sm90_variant_of_a_kernel_name(kernel, variant):
    assert rekey_shipped.sm90_variant(kernel) == variant
    assert config_from_name(variant).name == variant


def test_other_kernels_name_no_variant():
    assert rekey_shipped.sm90_variant(ZERO_COUNTERS) is None
    assert rekey_shipped.sm90_variant("_ZN9flashcore4sm8011fwd_kernelIfEEvv") is None


def test_rows_move_where_their_kernel_is_unchanged(tmp_path, monkeypatch, capsys):
    same, changed = "fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8", "fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8_g1"
    same_kernel = _name("bfloat16_t", 128, 64, 128, 0, 1, 0, 0, 8, 1, "EpilogueSplitCombine")
    code = {"old": {same_kernel: "A", GLOBAL_COMBINE: "B"},
            "new": {same_kernel: "A", GLOBAL_COMBINE: "B2", ZERO_COUNTERS: "Z"}}
    hashes = {"old": {same: {"source_hash": "o1"}, changed: {"source_hash": "o2"}},
              "new": {same: {"source_hash": "n1"}, changed: {"source_hash": "n2"}}}
    monkeypatch.setattr(rekey_shipped, "kernels", lambda so: code[so.parent.name])
    monkeypatch.setattr(rekey_shipped, "manifest", lambda build: hashes[build.name])
    table = tmp_path / "tuned.json"
    rows = [{"variant": same, "problem_key": "k1", "source_hash": "o1"},
            {"variant": changed, "problem_key": "k2", "source_hash": "o2"}]
    table.write_text(json.dumps({"format": "flashcore-shipped-table", "version": 1, "provenance": {}, "rows": rows}))
    other = tmp_path / "tuned_h200.json"  # a second GPU's table, measured on the same sources
    other.write_text(json.dumps({"format": "flashcore-shipped-table", "version": 1, "provenance": {}, "rows": rows[:1]}))
    monkeypatch.setattr(sys, "argv", ["rekey_shipped.py", str(tmp_path / "old"), str(tmp_path / "new"),
                                      "--commit", "abc", "--table", str(table), "--table", str(other)])
    assert rekey_shipped.main() == 0
    out = json.loads(table.read_text())
    assert {r["variant"]: r["source_hash"] for r in out["rows"]} == {same: "n1", changed: "o2"}
    assert out["provenance"]["rekeyed_at"] == "abc"
    assert [r["source_hash"] for r in json.loads(other.read_text())["rows"]] == ["n1"]
    assert f"{changed} @ k2" in capsys.readouterr().out

    # A row measured on another build than the one named as old: refused, no table written.
    other.write_text(json.dumps({"format": "flashcore-shipped-table", "version": 1, "provenance": {}, "rows": rows}))
    table.write_text(json.dumps({"format": "f", "version": 1, "provenance": {},
                                 "rows": [{"variant": same, "problem_key": "k1", "source_hash": "elsewhere"}]}))
    before = table.read_text(), other.read_text()
    monkeypatch.setattr(sys, "argv", ["rekey_shipped.py", str(tmp_path / "old"), str(tmp_path / "new"),
                                      "--commit", "abc", "--table", str(other), "--table", str(table)])
    assert rekey_shipped.main() == 1
    assert (table.read_text(), other.read_text()) == before
    assert "tuned.json: row" in capsys.readouterr().err


def test_rows_named_changed_stay_stale_without_their_kernels(tmp_path, monkeypatch, capsys):
    """--changed GLOB: rows of variants a change is known to reach stay in the table, stale, although
    neither build holds their kernels (so that tune --suite shipped --stale-only finds their keys)."""
    same, multi = "fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8", "fc_sm90_bf16_d64_causal_m128_n128_s2_sch2_p1_kv1_lr1"
    same_kernel = _name("bfloat16_t", 128, 64, 128, 0, 1, 0, 0, 8, 1, "EpilogueSplitCombine")
    monkeypatch.setattr(rekey_shipped, "kernels", lambda so: {same_kernel: "A"})
    monkeypatch.setattr(rekey_shipped, "manifest",
                        lambda build: {same: {"source_hash": {"old": "o1", "new": "n1"}[build.name]}})
    table = tmp_path / "tuned.json"
    rows = [{"variant": same, "problem_key": "k1", "source_hash": "o1"},
            {"variant": multi, "problem_key": "k2", "source_hash": "o2"}]
    table.write_text(json.dumps({"format": "flashcore-shipped-table", "version": 1, "provenance": {}, "rows": rows}))
    argv = ["rekey_shipped.py", str(tmp_path / "old"), str(tmp_path / "new"), "--commit", "abc", "--table", str(table)]
    monkeypatch.setattr(sys, "argv", argv)
    assert rekey_shipped.main() == 1  # without --changed: the multi-WG kernel is in neither build
    assert "not measured on the old build" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", argv + ["--changed", "fc_sm90_*_m128_*", "--changed", "fc_sm90_*_m192_*"])
    assert rekey_shipped.main() == 0
    out = json.loads(table.read_text())
    assert {r["variant"]: r["source_hash"] for r in out["rows"]} == {same: "n1", multi: "o2"}
    assert f"{multi} @ k2" in capsys.readouterr().out


def test_the_default_tables_are_the_package_files():
    assert {p.name for p in rekey_shipped.DATA.glob(rekey_shipped.TABLE_PATTERN)} >= {"tuned_h200.json"}


def test_a_no_link_build_reads_its_kernel_objects(tmp_path, monkeypatch):
    """A `flashcore build --no-link` directory has no extension: its kernels are its objects'."""
    (tmp_path / "obj").mkdir()
    for name in ("a.o", "b.o"):
        (tmp_path / "obj" / name).write_bytes(b"")
    monkeypatch.setattr(rekey_shipped, "kernels", lambda path: {f"k_{path.stem}": path.stem})
    assert rekey_shipped.build_kernels(tmp_path) == {"k_a": "a", "k_b": "b"}
    (tmp_path / "flashcore_ext.so").write_bytes(b"")
    assert rekey_shipped.build_kernels(tmp_path) == {"k_flashcore_ext": "flashcore_ext"}
