import dataclasses
import math

import pytest

from flashcore_cutlass.problem import Problem, ProblemKey, bucket, gqa_key_range, parse_shape, shape_distance, shape_text


@pytest.mark.parametrize("n, expected", [(1, 1), (2, 2), (3, 4), (64, 64), (65, 128), (4096, 4096), (4097, 8192)])
def test_bucket_rounds_up_to_power_of_two(n, expected):
    assert bucket(n) == expected


@pytest.mark.parametrize("n", [0, -5])
def test_bucket_rejects_nonpositive(n):
    with pytest.raises(ValueError):
        bucket(n)


def test_key_buckets_sequences_and_batch_heads():
    p = Problem("bf16", 128, True, batch=3, heads=5, seqlen_q=1000, seqlen_k=33)
    assert p.key == ProblemKey("bf16", 128, True, seqlen_q=1024, seqlen_k=64, batch_heads=16)


def test_key_str_and_parse_round_trip():
    key = ProblemKey("fp16", 64, False, 128, 4096, 32)
    assert str(key) == "fp16_d64_full_q128_k4096_bh32"
    assert ProblemKey.parse(str(key)) == key
    causal = ProblemKey("bf16", 256, True, 1, 2, 4)
    assert ProblemKey.parse(str(causal)) == causal


@pytest.mark.parametrize("text", ["", "bf16_d128_causal", "bf16_dX_causal_q1_k1_bh1"])
def test_parse_rejects_malformed(text):
    with pytest.raises(ValueError, match="malformed problem key"):
        ProblemKey.parse(text)


def test_flops_halved_for_causal():
    full = Problem("bf16", 128, False, 2, 4, 1024, 2048)
    assert full.flops == 4.0 * 2 * 4 * 1024 * 2048 * 128
    assert Problem("bf16", 128, True, 2, 4, 1024, 2048).flops == full.flops / 2


def test_problem_str():
    assert str(Problem("fp16", 64, True, 4, 16, 4096, 4096)) == "fp16 B4 H16 Sq4096 Sk4096 D64 causal"


def test_a_value_head_dim_of_its_own_has_its_own_key():
    """V's head dim enters key and name only when it differs (an equal one is the same problem)."""
    p = Problem("bf16", 192, True, 2, 16, 1000, 1000, head_dim_v=128)
    assert p.key == ProblemKey("bf16", 192, True, 1024, 1024, 32, head_dim_v=128)
    assert str(p.key) == "bf16_d192v128_causal_q1024_k1024_bh32"
    assert ProblemKey.parse(str(p.key)) == p.key
    assert str(p) == "bf16 B2 H16 Sq1000 Sk1000 D192 Dv128 causal"
    same = Problem("bf16", 128, True, 2, 16, 1000, 1000, head_dim_v=128)
    assert same == Problem("bf16", 128, True, 2, 16, 1000, 1000) and same.head_dim_v is None
    assert str(same.key) == "bf16_d128_causal_q1024_k1024_bh32" and same.value_head_dim == 128
    # Two GEMMs of their own widths: 2*B*H*Sq*Sk*(D + Dv), halved for causal.
    assert p.flops == 2.0 * 2 * 16 * 1000 * 1000 * (192 + 128) / 2
    with pytest.raises(ValueError, match="malformed problem key"):
        ProblemKey.parse("bf16_d192vx_causal_q1_k1_bh1")


# -- the mask's run-time parameters in the key ------------------------------------------------

def test_key_holds_alignment_window_and_softcap_and_round_trips():
    base = dict(dtype="bf16", head_dim=128, causal=True, batch=1, heads=32, seqlen_q=64, seqlen_k=8192)
    cases = {
        "bf16_d128_causal_q64_k8192_bh32": Problem(**base),
        "bf16_d128_causalbr_q64_k8192_bh32": Problem(**base, bottom_right=True),
        "bf16_d128_causalbrw4096_q64_k8192_bh32": Problem(**base, bottom_right=True, window=(4095, 0)),
        "bf16_d128_causalw8192sc_q64_k8192_bh32": Problem(**base, window=(-1, -1), softcap=30.0),
        "bf16_d128_causalsc_q64_k8192_bh32": Problem(**base, softcap=50.0),
    }
    for text, p in cases.items():
        assert str(p.key) == text
        assert ProblemKey.parse(text) == p.key
    # Where the alignments agree (Sq == Sk), bottom-right shares top-left's key.
    square = dict(base, seqlen_q=4096, seqlen_k=4096)
    assert Problem(**square, bottom_right=True).key == Problem(**square).key
    # Keys without mask parameters read as before (the shipped table's).
    assert str(ProblemKey.parse("bf16_d128_full_q4096_k4096_bh64")) == "bf16_d128_full_q4096_k4096_bh64"
    for bad in ("bf16_d128_causalx_q64_k64_bh1", "bf16_d128_fullbrsc_q64_k64_bh1x", "bf16_d128_causalw_q64_k64_bh1"):
        with pytest.raises(ValueError, match="malformed problem key"):
            ProblemKey.parse(bad)


def test_mask_parameters_need_a_masked_problem():
    with pytest.raises(ValueError, match="causal must be True"):
        Problem("bf16", 128, False, 1, 8, 64, 8192, bottom_right=True)
    with pytest.raises(ValueError, match="causal must be True"):
        Problem("bf16", 128, False, 1, 8, 64, 8192, window=(64, 0))


@pytest.mark.parametrize("causal, window, sq, sk", [
    ("top_left", None, 64, 8192), ("bottom_right", None, 64, 8192), ("bottom_right", None, 300, 100),
    ("top_left", (100, 0), 512, 512), ("bottom_right", (4095, 0), 64, 8192), ("none", (3, 2), 8, 13),
    ("none", (-1, 5), 8, 13), ("none", (7, -1), 20, 13),
])
def test_mask_arguments_match_what_attention_passes(causal, window, sq, sk):
    """Problem.mask_arguments (what the tuner runs) against api._mask_offsets (what attention()
    runs), for the problems attention() builds; open right sides may differ in how far past the
    last key they reach (both are clamped to the sequence by the binding)."""
    from flashcore_cutlass import api

    masked = causal != "none" or window is not None
    bottom_right = api.window_diagonals(causal, window)[0] and masked
    p = Problem("bf16", 128, masked, 1, 8, sq, sk, bottom_right=bottom_right, window=window)
    want = api._mask_offsets(causal, window, sq, sk)
    got = p.mask_arguments()
    assert got[1] == want[1]
    assert got[0] == want[0] or min(got[0], want[0]) >= sk - 1  # both past the last key: the same mask


def test_visible_keys_of_a_key():
    kw = dict(dtype="bf16", head_dim=128, batch=1, heads=8, seqlen_q=64, seqlen_k=8192)
    assert Problem(**kw, causal=False).key.visible_keys == 8192
    assert Problem(**kw, causal=True).key.visible_keys == 64
    assert Problem(**kw, causal=True, bottom_right=True).key.visible_keys == 8192
    assert Problem(**kw, causal=True, bottom_right=True, window=(1000, 0)).key.visible_keys == 1024


def test_grid_key_keeps_the_grid_sizes_the_key_buckets():
    """B x H exact, Sq in 64-row tiles (exact up to 64), Sk and the window's span in 128-key tiles;
    the mask and dims as the key has them."""
    p = Problem("bf16", 128, True, 3, 8, 100, 8000, bottom_right=True, window=(1000, 0))
    assert p.key.batch_heads == 32 and p.key.seqlen_q == 128 and p.key.seqlen_k == 8192 and p.key.window == 1024
    grid = p.grid_key
    assert (grid.batch_heads, grid.seqlen_q, grid.seqlen_k, grid.window) == (24, 128, 8064, 1024)
    assert dataclasses.replace(grid, batch_heads=32, seqlen_k=8192) == p.key
    assert Problem("bf16", 64, False, 5, 8, 4, 4097).grid_key.seqlen_q == 4  # few rows stay exact
    assert Problem("bf16", 64, False, 5, 8, 4, 4097).grid_key.seqlen_k == 4224
    # Two shapes of one key, two grids: B3 and B4 decoding over 8k keys (8 KV heads x 4 rows).
    b3, b4 = (Problem("bf16", 64, False, b, 8, 4, 8192) for b in (3, 4))
    assert b3.key == b4.key and b3.grid_key != b4.grid_key


@pytest.mark.parametrize("heads, heads_k, sq, sk, masked, bottom_right, window, expected", [
    (32, 8, 1, 8192, False, False, None, (0, 8192)),        # decoding, unmasked
    (32, 8, 1, 8192, True, True, None, (0, 8192)),          # bottom-right: the one row sees every key
    (32, 8, 1, 8192, True, False, None, (0, 1)),            # top-left: row 0 sees key 0
    (32, 8, 1, 8192, True, True, (4096, 0), (4095, 8192)),  # Mistral's window at the cache's end
    (32, 8, 1, 10, True, True, (2, 1), (7, 10)),            # a two-sided window: right clamped to the keys
    (32, 8, 1, 10, True, True, (-1, 0), (0, 10)),           # an unbounded left side
    (32, 8, 1, 10, True, False, (3, 0), (0, 1)),            # top-left window: key 0
    (32, 1, 1, 5, False, False, None, (0, 5)),              # MQA
    (32, 32, 1, 8192, False, False, None, None),            # MHA: no group to pack
    (32, 8, 2, 8192, False, False, None, None),             # two query rows per head
    (32, 8, 1, 0, False, False, None, None),                # no keys
])
def test_gqa_key_range(heads, heads_k, sq, sk, masked, bottom_right, window, expected):
    """Packing a group's query heads into rows applies to one query row per head, and turns the
    mask into the keys that row sees (api._mask_offsets's diagonals at Sq = 1)."""
    assert gqa_key_range(heads, heads_k, sq, sk, masked, bottom_right, window) == expected


def test_gqa_packed_is_the_problem_the_kernels_run():
    from flashcore_cutlass.problem import gqa_packed

    gemma = Problem("bf16", 256, True, 2, 16, 1, 8192, bottom_right=True, softcap=50.0, head_dim_v=128)
    packed, begin, end = gqa_packed(gemma, 8)
    assert (begin, end) == (0, 8192)
    assert packed == Problem("bf16", 256, False, 2, 8, 2, 8192, head_dim_v=128, softcap=50.0)
    assert str(packed.key) == "bf16_d256v128_fullsc_q2_k8192_bh16"
    assert gqa_packed(gemma, 16) is None  # MHA
    unaligned = Problem("fp16", 64, False, 1, 8, 1, 100, aligned16=False)
    assert gqa_packed(unaligned, 1)[0].aligned16 is False  # the layout's dispatch constraint carries over


def test_gqa_row_packed_for_a_few_query_rows_under_any_mask():
    """1 < Sq < 64 with a group: the group's query heads go into the rows of the kernel's tiles
    where that gives fewer 64-row tiles; the key says so (g<G>) and round-trips."""
    from flashcore_cutlass.problem import gqa_row_packed, packed_row_slots

    spec = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True)
    packed = gqa_row_packed(spec, 8)
    assert packed == Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True, group=4)
    assert packed.heads_k == 8 and "GQA 32/8 packed" in str(packed)
    assert str(packed.key) == "bf16_d128_causalbrg4_q4_k8192_bh32"
    assert ProblemKey.parse(str(packed.key)) == packed.key
    windowed = Problem("fp16", 256, True, 2, 16, 5, 4000, bottom_right=True, window=(1024, 0), softcap=30.0)
    assert str(gqa_row_packed(windowed, 8).key) == "fp16_d256_causalbrw2048scg2_q8_k4096_bh32"
    assert gqa_row_packed(spec, 32) is None  # MHA
    assert gqa_row_packed(Problem("bf16", 128, True, 1, 32, 1, 8192), 8) is None  # Sq = 1: gqa_packed's view
    assert gqa_row_packed(Problem("bf16", 128, True, 3, 32, 1, 8192), 8, min_rows=1).group == 4  # varlen decoding
    assert gqa_row_packed(Problem("bf16", 128, True, 1, 32, 64, 8192), 8) is None  # full tiles per head
    assert gqa_row_packed(Problem("bf16", 128, True, 1, 128, 4, 100), 1) is None  # 128 heads: wider than a tile
    # Packing must give fewer tiles: 48 queries of 4 heads take 3 tiles packed, 4 unpacked; 63 of 2 take 2 either way.
    assert gqa_row_packed(Problem("bf16", 128, True, 1, 4, 48, 100), 1) is not None
    assert gqa_row_packed(Problem("bf16", 128, True, 1, 2, 63, 100), 1) is None
    assert [packed_row_slots(g) for g in (1, 2, 3, 4, 7, 8, 9, 64)] == [1, 2, 4, 4, 8, 8, 16, 64]
    with pytest.raises(ValueError, match="group 3 must divide"):
        Problem("bf16", 128, True, 1, 32, 4, 100, group=3)


def test_shape_text_round_trips_and_shapes_are_measured_apart_by_their_grids():
    p = Problem("bf16", 128, False, 8, 32, 4, 8192)
    assert shape_text(p) == "B8 H32 Sq4 Sk8192" and parse_shape(shape_text(p)) == (8, 32, 4, 8192)
    assert parse_shape("B8 H32") is None
    assert shape_distance("B8 H32 Sq4 Sk8192", "B8 H32 Sq4 Sk8192") == 0.0
    assert shape_distance("B4 H64 Sq4 Sk8192", "B8 H32 Sq4 Sk8192") == 0.0  # the same B*H
    assert shape_distance("B6 H32 Sq4 Sk8192", "B8 H32 Sq4 Sk8192") == pytest.approx(math.log2(8 / 6))
    assert shape_distance("B8 H32 Sq3 Sk5000", "B8 H32 Sq4 Sk8192") == \
        pytest.approx(math.log2(4 / 3) + math.log2(8192 / 5000))
    assert shape_distance("B6 H32 Sq4 Sk8192", "B8 H32 Sq4 Sk8192") == \
        shape_distance("B8 H32 Sq4 Sk8192", "B6 H32 Sq4 Sk8192")
    # A text of another form: equal to itself, infinitely far from anything else.
    assert shape_distance("odd", "odd") == 0.0 and shape_distance("odd", "B8 H32 Sq4 Sk8192") == math.inf
    assert shape_distance("B0 H32 Sq4 Sk8192", "B8 H32 Sq4 Sk8192") == math.inf


def test_grouped_query_heads_the_kernels_map_are_in_the_key_and_the_shape():
    """Prefill with grouped-query heads (not packed): K/V heads count in the key (gqa<R>, R = H / Hkv
    bucketed: each K/V head is read by R query heads' tiles) and in the row's exact shape (Hkv), so
    rows measured on MHA inputs never serve GQA calls, nor the reverse."""
    from flashcore_cutlass.problem import gqa_row_packed, shape_heads_kv

    mha = Problem("bf16", 128, True, 1, 32, 4096, 4096)
    gqa = Problem("bf16", 128, True, 1, 32, 4096, 4096, heads_kv=8)
    assert str(mha.key) == "bf16_d128_causal_q4096_k4096_bh32" and mha.heads_k == 32
    assert str(gqa.key) == "bf16_d128_causalgqa4_q4096_k4096_bh32" and gqa.heads_k == 8
    assert ProblemKey.parse(str(gqa.key)) == gqa.key and gqa.grid_key.kv_group == 4
    assert "GQA 32/8" in str(gqa) and "packed" not in str(gqa)
    qwen = Problem("bf16", 128, True, 1, 28, 4096, 4096, heads_kv=4)  # 7 query heads a K/V head: bucket 8
    assert str(qwen.key) == "bf16_d128_causalgqa8_q4096_k4096_bh32"
    windowed = Problem("bf16", 128, True, 1, 32, 8192, 8192, window=(4096, 0), softcap=50.0, heads_kv=1)
    assert str(windowed.key) == "bf16_d128_causalw8192scgqa32_q8192_k8192_bh32"  # MQA
    assert Problem("bf16", 128, True, 1, 32, 4096, 4096, heads_kv=32) == mha  # as many K/V heads: MHA
    assert shape_text(gqa) == "B1 H32 Sq4096 Sk4096 Hkv8" and shape_text(mha) == "B1 H32 Sq4096 Sk4096"
    assert parse_shape("B1 H32 Sq4096 Sk4096 Hkv8") == (1, 32, 4096, 4096)
    assert shape_heads_kv("B1 H32 Sq4096 Sk4096 Hkv8") == 8 and shape_heads_kv("B1 H32 Sq4096 Sk4096") is None
    assert shape_distance("B1 H32 Sq4096 Sk4096 Hkv8", "B1 H32 Sq4096 Sk4096 Hkv4") == 0.0  # one key, one grid
    # Packing a few query rows maps the heads by its group instead.
    spec = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True, heads_kv=8)
    assert gqa_row_packed(spec, 8) == Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True, group=4)
    with pytest.raises(ValueError, match="3 key/value heads must divide the 32"):
        Problem("bf16", 128, True, 1, 32, 4096, 4096, heads_kv=3)
    with pytest.raises(ValueError, match="no heads_kv"):
        Problem("bf16", 128, True, 1, 32, 4, 8192, group=4, heads_kv=8)
    with pytest.raises(ValueError, match="malformed problem key"):
        ProblemKey.parse("bf16_d128_causalg4gqa4_q4_k8192_bh32")


def test_dispatched_problem_is_the_key_attention_runs_under():
    """What a benchmark reports as dispatched for a call with Hkv heads: decoding packed, a few
    query rows packed where a packing variant runs, any other problem with its K/V heads."""
    from flashcore_cutlass.problem import dispatched_problem

    runs = lambda p: True  # noqa: E731
    decoding = Problem("bf16", 128, True, 1, 32, 1, 8192, bottom_right=True)
    assert dispatched_problem(decoding, 8, runs) == Problem("bf16", 128, False, 1, 8, 4, 8192)
    spec = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True)
    assert dispatched_problem(spec, 8, runs).group == 4
    assert dispatched_problem(spec, 8, lambda p: False) == dataclasses.replace(spec, heads_kv=8)
    prefill = Problem("bf16", 128, True, 1, 32, 4096, 4096)
    assert str(dispatched_problem(prefill, 8, runs).key) == "bf16_d128_causalgqa4_q4096_k4096_bh32"
    assert dispatched_problem(prefill, 32, runs) == prefill
