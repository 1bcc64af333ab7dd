"""benchmarks/bench_decode.py on CPU: its pure helpers (how many KV caches rotate, the bytes a
call must read, SDPA's mask of a window) and its cases (every one packs)."""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import bench_decode  # noqa: E402
from flashcore_cutlass.problem import Problem, gqa_packed  # noqa: E402
from flashcore_cutlass.tune import gqa_decode_shapes, spec_decode_shapes  # noqa: E402


def test_cache_copies_exceed_the_l2():
    assert bench_decode.cache_copies(33_554_432) == 7  # 32 MiB each: 7 x 32 MiB >= 200 MiB
    assert bench_decode.cache_copies(300 * 2**20) == 1
    assert bench_decode.cache_copies(1) == bench_decode.GRAPH_CALLS  # capped at the calls of one graph
    assert bench_decode.cache_copies(0) == bench_decode.GRAPH_CALLS


def test_read_bytes_counts_each_key_value_head_once():
    # Llama-3-8B decoding, 8k cache: 8 K/V heads x 8192 keys x (128 + 128) x 2 bytes.
    assert bench_decode.read_bytes(1, 8, 8192, 128, 128) == 33_554_432
    assert bench_decode.read_bytes(2, 8, 4097, 256, 128, 2) == 2 * 8 * 4097 * 384 * 2


def test_visible_mask_is_the_key_range():
    mask = bench_decode.visible_mask(10, (6, 10), "cpu")
    assert mask.shape == (1, 10) and mask.tolist() == [[False] * 6 + [True] * 4]


def test_rows_mask_is_the_bottom_right_window():
    mask = bench_decode.rows_mask(2, 6, None, "cpu")
    assert mask.tolist() == [[True] * 5 + [False], [True] * 6]
    assert bench_decode.rows_mask(2, 6, (1, 0), "cpu").tolist() == [[False] * 3 + [True] * 2 + [False],
                                                                      [False] * 4 + [True] * 2]
    assert bench_decode.key_span(2, 6, (1, 0)) == (3, 6) and bench_decode.key_span(4, 8192, None) == (0, 8192)


@pytest.mark.parametrize("name", sorted(bench_decode.CASES))
def test_every_case_is_a_packed_decoding_call_the_tune_suite_holds(name):
    b, hq, hkv, sk, d, window, softcap, sq = bench_decode.CASES[name]
    per_head = Problem("bf16", d, True, b, hq, sq, sk, bottom_right=True, window=window, softcap=softcap or 0.0)
    packed = bench_decode.packed_problem(per_head, hkv)
    if sq == 1:
        _, begin, end = gqa_packed(per_head, hkv)
        assert end == sk and (begin == 0 if window is None else begin == sk - 1 - window[0])
        assert packed.key in {p.key for p in gqa_decode_shapes()}  # the shipped table has a measured winner
    else:
        assert packed.group == hq // hkv and packed.key in {p.key for p in spec_decode_shapes()}


@pytest.mark.parametrize("name", sorted(bench_decode.VARLEN_CASES))
def test_every_varlen_case_packs_its_groups(name):
    from flashcore_cutlass.problem import gqa_row_packed

    hq, hkv, d, lens_k, sq = bench_decode.VARLEN_CASES[name]
    per_head = Problem("bf16", d, True, len(lens_k), hq, sq, max(lens_k), bottom_right=True)
    assert gqa_row_packed(per_head, hkv, min_rows=1).group == hq // hkv
