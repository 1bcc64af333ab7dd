import dataclasses
import sqlite3
import warnings

import pytest

from flashcore_codegen.families import MmaConfig, PipelinedConfig, ScalarConfig
from flashcore_cutlass.env import Environment
from flashcore_cutlass.problem import Problem, ProblemKey
from flashcore_cutlass.registry import Choice, MissingVariantError, Registry, build_command, heuristic_rank
from flashcore_cutlass import registry as registry_module
from flashcore_cutlass import table as table_module
from flashcore_cutlass.table import TableError, TableWarning, TuningTable

ENV = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
OTHER_ENV = Environment("NVIDIA H200", 132, "12.8", "2.8.0", "4.2.0.0")
BF16_CAUSAL = dict(dtype="bf16", head_dim=128, causal=True)


def pipelined(block_m=128, block_n=64, warps=4, stages=2, **problem):
    return PipelinedConfig(**(BF16_CAUSAL | problem), block_m=block_m, block_n=block_n, warps=warps, stages=stages).name


def mma(block_m=128, **problem):
    return MmaConfig(**(BF16_CAUSAL | problem), block_m=block_m, block_n=64, warps=4).name


def scalar(block_m=32, **problem):
    return ScalarConfig(**(BF16_CAUSAL | problem), block_m=block_m, warps=4).name


def problem(seqlen_q=4096, seqlen_k=4096, **kw):
    return Problem(**(BF16_CAUSAL | kw), batch=4, heads=16, seqlen_q=seqlen_q, seqlen_k=seqlen_k)


def hashes(*names):
    return {n: f"hash-{n}" for n in names}


def record(table, variant, median, p, *, env=ENV, source_hash=None):
    table.record(variant, p.key, shape="B4 H16", median_us=median, spread_us=1.0, tflops=1.0, samples=10,
                 max_abs_err=0.0, env=env, source_hash=source_hash or f"hash-{variant}")


@pytest.fixture
def table(tmp_path):
    return TuningTable(tmp_path / "tuning.db")


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.delenv("FLASHCORE_PRINT_DISPATCH", raising=False)
    monkeypatch.setenv("FLASHCORE_SHIPPED_TABLE", "off")  # the package's table is tested in test_shipped.py


# -- heuristic ---------------------------------------------------------------------------

def test_heuristic_prefers_highest_ladder_step():
    names = [scalar(), mma(), pipelined(block_m=64, block_n=128, warps=8, stages=1)]
    reg = Registry(hashes(*names))
    assert reg.choose(problem()) == Choice(names[2], "heuristic")
    assert Registry(hashes(scalar(), mma())).choose(problem()).variant == mma()
    assert Registry(hashes(scalar())).choose(problem()).variant == scalar()


def test_heuristic_prefers_one_cta_per_query_tile():
    # Split-KV clusters win only what the tuner measures; a name that sorts first must not win.
    from flashcore_codegen.families import Sm90Config

    split, plain = (Sm90Config(**BF16_CAUSAL, block_m=128, block_n=128, stages=2, schedule=1, persistent=p,
                               splits=s).name for p, s in ((0, 2), (1, 1)))
    assert split < plain
    assert Registry(hashes(split, plain)).choose(problem(seqlen_q=512, seqlen_k=512)).variant == plain


def test_heuristic_block_m_follows_seqlen_q():
    names = [pipelined(block_m=64), pipelined(block_m=128)]
    reg = Registry(hashes(*names))
    assert reg.choose(problem(seqlen_q=64)).variant == pipelined(block_m=64)
    assert reg.choose(problem(seqlen_q=1)).variant == pipelined(block_m=64)
    assert reg.choose(problem(seqlen_q=65)).variant == pipelined(block_m=128)
    assert reg.choose(problem(seqlen_q=8192)).variant == pipelined(block_m=128)


def test_heuristic_axis_order_block_m_then_n_then_stages_then_warps_then_lean():
    names = [
        pipelined(block_m=128, block_n=64, stages=2, warps=4, lean=1),  # wrong lean only
        pipelined(block_m=64, block_n=64, stages=2, warps=4),  # wrong block_m only
        pipelined(block_m=128, block_n=128, stages=2, warps=4),  # wrong block_n only
        pipelined(block_m=128, block_n=64, stages=3, warps=4),  # wrong stages only
        pipelined(block_m=128, block_n=64, stages=2, warps=8),  # wrong warps only
        pipelined(block_m=128, block_n=64, stages=2, warps=4),  # all preferred
    ]
    reg = Registry(hashes(*names))
    assert reg.candidates(problem()) == [names[5], names[0], names[4], names[3], names[2], names[1]]


def test_heuristic_ties_broken_by_name():
    # stages 1 and 3 are equally far from the preferred 2: the name decides.
    a, b = pipelined(stages=1), pipelined(stages=3)
    assert Registry(hashes(b, a)).choose(problem()).variant == min(a, b) == a
    rank = heuristic_rank(PipelinedConfig(**BF16_CAUSAL, block_m=128, block_n=64, warps=4, stages=2), problem())
    assert rank == (-3, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, pipelined())  # 128: V's head dim


def test_heuristic_prefers_the_lazy_rescale_twin():
    """Of two otherwise equal sm90 tiles, the one that rescales O lazily (strictly less work; 1.027x
    over its eager twin on the grid), though its name sorts after the eager one's."""
    from flashcore_codegen.families import Sm90Config

    base = dict(**BF16_CAUSAL, block_m=128, block_n=128, stages=2, schedule=2, persistent=1)
    eager, lazy = Sm90Config(**base).name, Sm90Config(**base, lazy_rescale=1).name
    assert eager < lazy
    for p in (problem(), problem(seqlen_q=512, seqlen_k=512)):
        assert Registry(hashes(eager, lazy)).choose(p).variant == lazy


def test_heuristic_prefers_the_per_warpgroup_key_range_twin_for_causal_problems():
    """Of two otherwise equal causal sm90 tiles, the one whose warpgroups skip the key tiles right of
    their rows (less work: D256 128x64 causal 2-7 % faster), though its name sorts after the other's."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=256, causal=True, block_m=128, block_n=64, stages=2, schedule=1, persistent=1,
                lazy_rescale=1)
    plain, own = Sm90Config(**base).name, Sm90Config(**base, wg_keys=1).name
    assert plain < own
    for p in (problem(head_dim=256), problem(head_dim=256, seqlen_q=512, seqlen_k=512)):
        assert Registry(hashes(plain, own)).choose(p).variant == own


def test_heuristic_prefers_the_wider_of_two_key_tiles_equally_far_from_64():
    """128x48 and 128x80 are both 16 from block_n 64: the wider wins (at D256 it was 13-37 % faster
    from S = 2k on), not the name (n48 sorts first). D128: the family names no preference there."""
    from flashcore_codegen.families import Sm90Config

    narrow, wide = (Sm90Config(**(BF16_CAUSAL | {"head_dim": 128}), block_m=128, block_n=n, stages=2, schedule=1,
                               persistent=1).name for n in (48, 80))
    assert narrow < wide and "block_n" not in Sm90Config.HEURISTIC_TILES.get(128, {})
    assert Registry(hashes(narrow, wide)).choose(problem(head_dim=128)).variant == wide


def test_heuristic_prefers_the_narrower_of_two_query_tiles_equally_far_from_128():
    """Where no 128-row tile is built (D64 non-causal defaults: 64 and 192 rows), the 64-row tile
    wins, not the name (m192 sorts first): the seed shape took 5.8 us on it against 10.5; and no
    key-split tile while a one-warpgroup tile of the same rows is there."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="fp16", head_dim=64, causal=False, block_n=128, schedule=1)
    wide = Sm90Config(**base, block_m=192, stages=2, persistent=1).name
    narrow = Sm90Config(**base, block_m=64, stages=2, persistent=0).name
    split = Sm90Config(**base, block_m=64, stages=4, persistent=0, key_split_wgs=2).name
    assert wide < narrow
    seed = Problem("fp16", 64, False, 1, 8, 512, 512)
    assert Registry(hashes(wide, narrow, split)).choose(seed).variant == narrow


@pytest.mark.parametrize("head_dim", [64, 32, 40])
def test_heuristic_for_card_filling_d64_without_mask(head_dim):
    """sm90's D64 non-causal defaults (64x128 one CTA, 64x128 two CTAs per SM, 192x128) at untuned
    shapes (D32/D40 run on them padded), where the 64-row tiles outnumber the SMs: the 192-row tile
    where Sq > 512 and its tiles fill whole waves (rows of no whole 32-byte sectors, D40: where
    Sq > 256), else two CTAs per SM (the one-CTA tile the generic rule fell back on was 1.4-2.0x
    behind at 11 untuned keys); the one-CTA tile for the seed (64 tiles). Causal ones: the 64-row
    tiles, several CTAs per SM, below 1920 rows of the grid (Sq in 64-row tiles), the 192-row tile from
    there (rows of whole 32-byte sectors); D40 keeps the flat rules' 128-row tile."""
    from flashcore_codegen.families import Sm90Config

    def sm90(causal, m, persistent=1, ctas=1):
        return Sm90Config(dtype="bf16", head_dim=64, causal=causal, block_m=m, block_n=128, stages=2, schedule=1,
                          persistent=persistent, ctas_per_sm=ctas).name

    one, two, wide = sm90(False, 64, persistent=0), sm90(False, 64, ctas=2), sm90(False, 192)
    reg = Registry(hashes(one, two, wide))
    pick = lambda b, h, s: reg.choose(Problem("bf16", head_dim, False, b, h, s, s)).variant  # noqa: E731
    # Short rows (192-row padding >= 12.5 %), then ragged waves: (1, 16, 2048) has 176 192-row tiles.
    # D40's rows (80 B, not whole 32-byte sectors) take the 192-row tile from Sq > 256 on, ragged or not.
    for shape in [(64, 12, 197), (4, 32, 256)]:
        assert pick(*shape) == two, shape
    for shape in [(32, 12, 512), (16, 16, 512), (2, 16, 512), (1, 16, 2048)]:
        assert pick(*shape) == (wide if head_dim == 40 else two), shape
    # Long rows in whole waves: (2, 20, 1024) has 64 x 6 = 384 tiles (B*H bucketed), (1, 32, 4096) 704.
    for shape in [(2, 20, 1024), (8, 16, 1024), (16, 64, 1024), (1, 32, 4096), (8, 32, 2048), (1, 32, 16384)]:
        assert pick(*shape) == wide, shape
    assert pick(1, 8, 512) == one  # 64 query tiles of 64 rows on 132 SMs
    causal = [sm90(True, 64, ctas=2), sm90(True, 128), sm90(True, 192)]
    causal_pick = lambda b, h, s: Registry(hashes(*causal)).choose(Problem("bf16", head_dim, True, b, h, s, s)).variant  # noqa: E731
    assert causal_pick(16, 64, 1024) == (causal[1] if head_dim == 40 else causal[0])
    assert causal_pick(2, 32, 8192) == (causal[1] if head_dim == 40 else causal[2])


def test_d64_causal_prefers_three_ctas_a_sm_then_the_192_row_tile():
    """The H200's D64 causal grid keys: three one-WG 64x64 CTAs per SM won S = 512 and 1k, the 192-row
    tile from 2k on (from 4k before its warpgroups skipped the tiles right of their rows: it then won the
    2k key and 4 of 5 shapes of 1.5k-3k tuned after, the fifth by 0.7 %), counted on the grid's rows since
    inside that bucket it loses below 1920 rows (6 shapes, 1.02-1.29x); the 128x128 tiles no key; few-CTA
    problems keep their own rules (key split)."""
    from flashcore_codegen.families import Sm90Config

    def sm90(m, n=128, ctas=1, persistent=1, ks=1, stages=2):
        return Sm90Config(dtype="bf16", head_dim=64, causal=True, block_m=m, block_n=n, stages=stages, schedule=1,
                          persistent=persistent, ctas_per_sm=ctas, key_split_wgs=ks).name

    c3, c2, m128, m192 = sm90(64, 64, ctas=3), sm90(64, ctas=2), sm90(128), sm90(192)
    ks2, m192n96 = sm90(64, persistent=0, ks=2, stages=4), sm90(192, 96)
    reg = Registry(hashes(c3, c2, m128, m192, ks2, m192n96))
    pick = lambda b, h, s: reg.choose(Problem("bf16", 64, True, b, h, s, s)).variant  # noqa: E731
    assert [pick(32, 32, 512), pick(16, 32, 1024), pick(8, 32, 1024)] == [c3] * 3
    wide = [pick(8, 32, 2048), pick(16, 32, 2048), pick(16, 12, 1920), pick(4, 32, 4096), pick(1, 32, 16384)]
    assert wide == [m192] * 5
    # Inside the 2k bucket, the grid's rows decide: below 1920 the three-CTA tile (1.000-1.046x the fastest
    # at the 6 shapes measured; the 192-row tile 1.000-1.286x).
    short_of_wide = [pick(8, 32, 1536), pick(2, 32, 1280), pick(32, 8, 1100), pick(4, 24, 1408), pick(2, 40, 1664),
                     pick(12, 16, 1792)]
    assert short_of_wide == [c3] * 6
    assert pick(1, 8, 2048) == ks2  # 256 query tiles fit the SMs twice
    # Few heads at 2k-4k (fewer than 4 waves of 192-row tiles): the two-CTA 64-row tile; from 4 waves,
    # and past 4k keys, the rules above.
    assert [pick(1, 12, 2048), pick(2, 12, 2048), pick(1, 16, 4096), pick(1, 8, 4096)] == [c2] * 4
    assert [pick(4, 16, 2048), pick(1, 32, 4096), pick(1, 16, 8192)] == [m192] * 3
    gqa = Problem("bf16", 64, True, 1, 14, 4096, 4096, heads_kv=2)  # Qwen2-0.5B: a GQA key takes the same rules
    assert reg.choose(gqa).variant == c2
    # Not measured for windows (nor bottom-right over more keys): the flat rules' 128-row tile.
    windowed = Problem("bf16", 64, True, 32, 32, 512, 512, window=(255, 0))
    assert reg.choose(windowed).variant == m128


def test_rows_of_whole_32_byte_sectors():
    """The unaligned-rows rule's test: head dim x 2 bytes a multiple of 32, for Q/K and for V."""
    from flashcore_codegen.families import rows_32_byte_aligned

    key = lambda d, dv=None: ProblemKey("fp16", d, False, 1024, 1024, 64, dv)  # noqa: E731
    assert [d for d in range(32, 257, 8) if not rows_32_byte_aligned(key(d))] == list(range(40, 257, 16))
    assert not rows_32_byte_aligned(key(48, 40)) and rows_32_byte_aligned(key(48, 64))


def test_heuristic_prefers_key_split_warpgroups_for_few_ctas_with_long_key_loops():
    """Two key-split warpgroups (and their 64-row tile) where the 64-row tiles fit the SMs once, no
    split-KV pays and a row sees >= 8 tiles of 128 keys; one warpgroup at the seed (4 key tiles),
    where the tiles fill the SMs twice, and where split-KV pays; with no key-split tile built, the
    one-warpgroup tiles rank as they would without the rule."""
    from flashcore_codegen.families import Sm90Config

    def sm90(causal, m, stages=2, persistent=1, ks=1, splits=1):
        return Sm90Config(dtype="fp16", head_dim=64, causal=causal, block_m=m, block_n=128, stages=stages,
                          schedule=1, persistent=persistent, splits=splits, key_split_wgs=ks).name

    for causal in (False, True):
        plain, wide = sm90(causal, 64, persistent=0), sm90(causal, 128)
        split, kv2 = sm90(causal, 64, stages=4, persistent=0, ks=2), sm90(causal, 64, persistent=0, splits=2)
        reg = Registry(hashes(plain, wide, split, kv2))
        pick = lambda b, h, s: reg.choose(Problem("fp16", 64, causal, b, h, s, s)).variant
        assert pick(1, 8, 1024) == split and pick(1, 4, 2048) == split  # 128 tiles; 8 / 16 key tiles
        assert pick(1, 8, 512) == wide  # the seed: 4 key tiles (block_m 128 where one is built)
        # 256 tiles of 64 rows: the 128-row tile, but for a D64 causal triangle (key-split while they fit twice)
        assert pick(1, 16, 1024) == (split if causal else wide)
        if not causal:
            assert pick(1, 1, 2048) == kv2  # split-KV pays first
        assert Registry(hashes(plain, wide, kv2)).choose(Problem("fp16", 64, causal, 1, 8, 1024, 1024)).variant == wide
    assert not registry_module.prefers_key_split(Problem("fp16", 64, False, 1, 8, 1024, 1024).key, splits=2)


def test_key_split_while_twice_the_sms_only_for_small_head_dims():
    """The D128 causal triangle (1, 8, 2048) keeps the 128-row ping-pong tile (30.8 us against the
    key-split tile's 33.6, H100); its D64 twin takes the key-split tile (KEY_SPLIT_TWICE_MAX_HEAD_DIM)."""
    for head_dim, expected in ((64, True), (128, False)):
        key = Problem("bf16", head_dim, True, 1, 8, 2048, 2048).key
        assert registry_module.prefers_key_split(key, registry_module.preferred_splits(key)) == expected
    # Not a triangle: bottom-right rows over more keys than queries keep the once-the-SMs rule.
    assert not registry_module.prefers_key_split(Problem("bf16", 64, True, 1, 8, 2048, 4096, bottom_right=True).key, 1)


@pytest.mark.parametrize("shape, pick", [
    # One sequence's causal prefill (Sq = Sk), rows seeing >= 32 key tiles: the tuned winners
    # (benchmarks/NOTES.md 2026-11-27 12:00-, call 2).
    ((1, 1, 4096), "kv2"), ((1, 1, 8192), "kv2"), ((1, 2, 4096), "kv2"),  # 64-128 tiles of 64 rows
    ((1, 1, 16384), "ks2"), ((1, 2, 8192), "ks2"), ((1, 4, 4096), "ks2"),  # 256 tiles
    # Fewer key tiles: the flat rules (ks2 while the tiles fit once, else the 128-row tile).
    ((1, 4, 2048), "ks2"), ((1, 8, 1024), "ks2"),
    # D <= 64: key-split while the tiles fit the SMs twice (H200: 8-14 % ahead of the 128-row tile).
    ((1, 8, 2048), "ks2"), ((1, 16, 1024), "ks2"),
    ((1, 8, 8192), "wide"),  # 1024 tiles fill the card
])
def test_heuristic_halves_the_chain_of_a_long_causal_triangle(shape, pick):
    """A causal triangle's time is its longest CTAs' chain: with >= 32 key tiles a row, clusters of
    2 CTAs a query tile while its 64-row tiles fit the SMs once, key-split warpgroups while they
    fit twice; the same shapes unmasked, with a window or bottom-right over more keys keep the
    flat rules."""
    from flashcore_codegen.families import Sm90Config

    def sm90(causal, m, stages=2, persistent=1, ks=1, splits=1):
        return Sm90Config(dtype="fp16", head_dim=64, causal=causal, block_m=m, block_n=128, stages=stages,
                          schedule=1, persistent=persistent, splits=splits, key_split_wgs=ks).name

    names = {"wide": sm90(True, 128), "plain": sm90(True, 64, persistent=0),
             "ks2": sm90(True, 64, stages=4, persistent=0, ks=2), "kv2": sm90(True, 64, persistent=0, splits=2)}
    reg = Registry(hashes(*names.values()))
    b, h, s = shape
    assert reg.choose(Problem("fp16", 64, True, b, h, s, s)).variant == names[pick]
    assert registry_module.long_causal(Problem("fp16", 64, True, b, h, s, s).key) == (s >= 4096)
    # Not a triangle: a window's rows see equally many keys; bottom-right over more keys than queries.
    assert not registry_module.long_causal(Problem("fp16", 64, True, b, h, s, s, window=(4095, 0)).key)
    assert not registry_module.long_causal(Problem("fp16", 64, True, b, h, 64, s, bottom_right=True).key)
    unmasked = Problem("fp16", 64, False, b, h, s, s).key
    assert not registry_module.long_causal(unmasked)
    # Unmasked every row sees all the keys: (1, 1, 4096)'s 64 query tiles of 32 key tiles split into
    # clusters of 2 (one wave of 128 CTAs); from 128 query tiles on a split adds a wave (the split model).
    assert registry_module.preferred_splits(unmasked) == (2 if (b, h, s) == (1, 1, 4096) else 1)


def test_heuristic_prefers_the_variant_with_the_problems_value_head_dim():
    """DeepSeek-style 192/128: the variant whose V head dim is 128 does a third less PV work than the
    D192 variant that pads V to 192, so it ranks first although the other's tile is nearer the
    generic preferences; a 192/192 call has only the padding variant."""
    from flashcore_codegen.families import Sm90Config

    base = dict(BF16_CAUSAL, head_dim=192, block_m=128, stages=2, schedule=2, persistent=1)
    pads = Sm90Config(**base, block_n=80).name
    own = Sm90Config(**base, block_n=128, head_dim_v=128).name
    registry = Registry(hashes(pads, own))
    assert registry.choose(problem(head_dim=192, head_dim_v=128)).variant == own
    assert registry.candidates(problem(head_dim=192)) == [pads]


def test_heuristic_prefers_one_cta_per_sm_over_a_nearer_key_tile():
    """Short queries at D128: the 64-row candidates are 64x128 split-KV (one CTA per SM) and 64x64
    with two CTAs per SM, whose block_n is the preferred 64; one CTA per SM ranks first (two won
    only the shortest causal grid cells when measured)."""
    from flashcore_codegen.families import Sm90Config

    def sm90(n, persistent, splits, ctas):
        return Sm90Config(**(BF16_CAUSAL | {"head_dim": 128}), block_m=64, block_n=n, stages=2, schedule=1,
                          persistent=persistent, splits=splits, ctas_per_sm=ctas).name

    split_kv, two_ctas = sm90(128, 0, 2, 1), sm90(64, 1, 1, 2)
    assert two_ctas.endswith("_c2") and not split_kv.endswith("_c1")
    assert Registry(hashes(two_ctas, split_kv)).choose(problem(seqlen_q=64, head_dim=128)).variant == split_kv


@pytest.mark.parametrize("causal", [False, True])
def test_d256_takes_the_generic_key_tile(causal):
    """sm90 names no block_n for D256 any more (HEURISTIC_TILES): an untuned D256 call takes the
    128x64 tile the generic block_n 64 picks over 128x80 (1.003x against 1.035x the fastest time
    at 14 tuned H200 keys), as D128 does; only D128's schedule is a family preference."""
    from flashcore_codegen.families import Sm90Config

    def sm90(head_dim, n):
        return Sm90Config(**(BF16_CAUSAL | {"head_dim": head_dim, "causal": causal}), block_m=128, block_n=n,
                          stages=2, schedule=1, persistent=1).name

    assert Sm90Config.HEURISTIC_TILES == {128: {"schedule": 2}}
    for d in (128, 256):
        p = Problem("bf16", d, causal, 4, 2048 // d, 4096, 4096)
        assert Registry(hashes(sm90(d, 64), sm90(d, 80))).choose(p).variant == sm90(d, 64)


@pytest.mark.parametrize("causal", [False, True])
def test_heuristic_prefers_the_ping_pong_schedule_at_d128(causal):
    """The D128 128x128 tiles of both schedules tie on every generic preference (the name picked the
    overlapped one); sm90 prefers ping-pong there (faster at 51 of 59 tuned keys), and nowhere else."""
    from flashcore_codegen.families import Sm90Config

    def sm90(head_dim, schedule):
        return Sm90Config(dtype="bf16", head_dim=head_dim, causal=causal, block_m=128, block_n=128, stages=2,
                          schedule=schedule, persistent=1).name

    overlap, pingpong = sm90(128, 1), sm90(128, 2)
    assert overlap < pingpong
    for b, h, s in [(2, 16, 1024), (4, 16, 4096), (32, 16, 512)]:
        assert Registry(hashes(overlap, pingpong)).choose(Problem("bf16", 128, causal, b, h, s, s)).variant == pingpong
    if causal:  # D64's schedules tie in measurement: the name still decides there
        assert Registry(hashes(sm90(64, 1), sm90(64, 2))).choose(Problem("bf16", 64, True, 4, 16, 4096, 4096)).variant \
            == sm90(64, 1)


def test_candidates_match_dtype_head_dim_and_mask():
    wanted = pipelined()
    others = [pipelined(dtype="fp16"), pipelined(head_dim=64), pipelined(causal=False)]
    reg = Registry(hashes(wanted, *others))
    assert reg.candidates(problem()) == [wanted]
    assert reg.choose(problem(causal=False)).variant == pipelined(causal=False)


def test_unknown_variant_name_is_rejected():
    with pytest.raises(ValueError):
        Registry({"fc_nosuchfamily_bf16_d128_causal_m64": "h"})


# -- missing variants --------------------------------------------------------------------

def test_missing_variant_names_the_build_command():
    reg = Registry(hashes(pipelined(dtype="fp16")))
    with pytest.raises(MissingVariantError) as info:
        reg.choose(problem())
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "flashcore build --dtype bf16 --head-dim 128 --causal" in message
    assert "bf16 B4 H16 Sq4096 Sk4096 D128 causal" in message
    assert info.value.command == "flashcore build --dtype bf16 --head-dim 128 --causal"


def test_missing_non_causal_uses_no_causal_flag():
    with pytest.raises(MissingVariantError, match="flashcore build --dtype fp16 --head-dim 64 --no-causal"):
        Registry({}).choose(problem(dtype="fp16", head_dim=64, causal=False))
    assert build_command(problem(causal=False)).endswith("--no-causal")


# -- tuned -------------------------------------------------------------------------------

def test_tuned_winner_overrides_heuristic(table):
    names = [pipelined(), mma(), scalar()]
    p = problem()
    record(table, mma(), 100.0, p)
    record(table, pipelined(), 150.0, p)
    assert Registry(hashes(*names), table, ENV).choose(p) == Choice(mma(), "tuned")


def test_stale_rows_fall_back_to_heuristic(table):
    names = [pipelined(), mma()]
    p = problem()
    record(table, mma(), 100.0, p, env=OTHER_ENV)  # other GPU
    record(table, mma(), 90.0, p, source_hash="an-older-build")  # other source
    assert Registry(hashes(*names), table, ENV).choose(p) == Choice(pipelined(), "heuristic")
    # The same rows are trusted in their own environment / for their own hash.
    assert Registry(hashes(*names), table, OTHER_ENV).choose(p) == Choice(mma(), "tuned")
    assert Registry({pipelined(): "x", mma(): "an-older-build"}, table, ENV).choose(p) == Choice(mma(), "tuned")


def test_rows_of_unbuilt_or_incompatible_variants_are_ignored(table):
    p = problem()
    record(table, mma(), 100.0, p)  # measured, but not built now
    assert Registry(hashes(pipelined()), table, ENV).choose(p) == Choice(pipelined(), "heuristic")


def test_tuned_falls_through_to_heuristic_then_error(table):
    p = problem()
    record(table, mma(), 100.0, p)
    assert Registry(hashes(mma(), pipelined()), table, ENV).choose(p).reason == "tuned"
    assert Registry(hashes(mma(), pipelined()), table, None).choose(p) == Choice(pipelined(), "heuristic")
    assert Registry(hashes(mma(), pipelined()), None, ENV).choose(p) == Choice(pipelined(), "heuristic")
    with pytest.raises(MissingVariantError):
        Registry(hashes(mma(dtype="fp16")), table, ENV).choose(p)


def test_tuned_applies_to_the_whole_bucket(table):
    record(table, mma(), 100.0, problem(seqlen_q=4096))
    reg = Registry(hashes(mma(), pipelined()), table, ENV)
    assert reg.choose(problem(seqlen_q=3000)) == Choice(mma(), "tuned")  # same bucket (4096)
    assert reg.choose(problem(seqlen_q=5000)) == Choice(pipelined(), "heuristic")  # bucket 8192


# -- cache -------------------------------------------------------------------------------

class CountingTable:
    def __init__(self, table):
        self.table, self.calls = table, 0

    def current(self, *args):
        self.calls += 1
        return self.table.current(*args)


def test_decisions_are_cached_per_key_until_invalidated(table):
    counting = CountingTable(table)
    reg = Registry(hashes(mma(), pipelined()), counting, ENV)
    p = problem()
    assert reg.choose(p) == Choice(pipelined(), "heuristic")
    record(table, mma(), 100.0, p)  # a new measurement is not seen until invalidate()
    assert reg.choose(p) == Choice(pipelined(), "heuristic")
    assert reg.choose(problem(seqlen_q=4000)) == Choice(pipelined(), "heuristic")  # same key
    assert counting.calls == 1
    reg.invalidate()
    assert reg.choose(p) == Choice(mma(), "tuned")
    assert counting.calls == 2


def test_print_dispatch_once_per_new_decision(monkeypatch, capsys):
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    reg = Registry(hashes(pipelined()))
    p = problem()
    reg.choose(p)
    reg.choose(p)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert str(p) in lines[0] and pipelined() in lines[0] and "heuristic" in lines[0]


def test_each_measured_shape_of_a_key_keeps_its_winner(table, monkeypatch, capsys):
    """Decoding over 8k keys (benchmarks/NOTES.md 2026-11-29 06:37-): the shipped row measured on
    B8 names clusters of 2; the user then tunes B6, where a cluster of 4 wins (and runs 1.6x slower
    at B8). B8 keeps the shipped winner, B6 takes the user's, shapes between take the nearer one."""
    from flashcore_cutlass.shipped import ShippedTable
    from flashcore_cutlass.table import Row

    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    names = hashes(mma(), pipelined())

    def decode(batch):
        return Problem("bf16", 128, True, batch, 32, 4, 8192)

    assert decode(6).key == decode(8).key
    shipped = ShippedTable([Row(pipelined(), str(decode(8).key), "B8 H32 Sq4 Sk8192", 65.0, 0.1, 1.0, 10, 0.0,
                                ENV.gpu_name, ENV.sm_count, "13.0", "2.11", "4.2.0.0", names[pipelined()],
                                "2026-11-29T00:00:00+00:00")])
    table.record(mma(), decode(6).key, shape="B6 H32 Sq4 Sk8192", median_us=57.0, spread_us=1.0, tflops=1.0,
                 samples=10, max_abs_err=0.0, env=ENV, source_hash=names[mma()])
    reg = Registry(names, table, ENV, shipped=shipped)
    assert reg.choose(decode(8)) == Choice(pipelined(), "shipped")
    assert reg.choose(decode(6)) == Choice(mma(), "tuned")
    assert reg.choose(decode(5)) == Choice(mma(), "tuned")
    assert reg.choose(decode(7)) == Choice(pipelined(), "shipped")  # 8/7 is nearer than 7/6
    assert reg.choose(decode(8)).shape == "B8 H32 Sq4 Sk8192"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4  # one per shape decided
    assert lines[1].endswith(f"-> {mma()} (tuned, measured on B6 H32 Sq4 Sk8192)")
    # Without the user's row every shape takes the shipped one, decided once for the key.
    reg = Registry(names, None, ENV, shipped=shipped)
    assert {reg.choose(decode(b)) for b in (5, 6, 7, 8)} == {Choice(pipelined(), "shipped")}
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_no_dispatch_output_by_default(capsys):
    Registry(hashes(pipelined())).choose(problem())
    assert capsys.readouterr().err == ""


# -- a table that cannot be read ---------------------------------------------------------

@pytest.fixture
def fresh_warning_state(monkeypatch):
    monkeypatch.setattr(registry_module, "_table_warning_issued", False)


class BrokenTable:
    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def current(self, *args):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc", [TableError("cannot read it"), sqlite3.DatabaseError("file is not a database")])
def test_unreadable_table_falls_back_to_heuristic_with_one_warning(fresh_warning_state, exc):
    broken = BrokenTable(exc)
    with pytest.warns(TableWarning) as caught:
        for reg in (Registry(hashes(mma(), pipelined()), broken, ENV), Registry(hashes(mma()), broken, ENV)):
            for seqlen in (64, 1024, 4096):
                assert reg.choose(problem(seqlen_q=seqlen)).reason == "heuristic"
    assert broken.calls == 6  # tried for every new key ...
    assert len(caught) == 1  # ... but said once per process
    assert "heuristic" in str(caught[0].message) and str(exc) in str(caught[0].message)


def test_corrupt_table_that_cannot_be_moved_dispatches_by_heuristic(tmp_path, monkeypatch, fresh_warning_state):
    path = tmp_path / "tuning.db"
    path.write_bytes(b"garbage" * 100)
    monkeypatch.setattr(table_module.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "denied")))
    table = TuningTable(path)  # does not raise
    reg = Registry(hashes(mma(), pipelined()), table, ENV)
    with pytest.warns(TableWarning, match="cannot be moved aside") as caught:
        assert reg.choose(problem()) == Choice(pipelined(), "heuristic")
        assert reg.choose(problem(seqlen_q=64)).reason == "heuristic"
    assert len(caught) == 1


def test_cache_dir_that_is_a_file_dispatches_by_heuristic(tmp_path, monkeypatch, fresh_warning_state):
    (tmp_path / "cache").write_text("not a directory")
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "cache"))
    reg = Registry(hashes(mma(), pipelined()), TuningTable(), ENV)
    with pytest.warns(TableWarning, match="FLASHCORE_CACHE_DIR") as caught:
        assert reg.choose(problem()) == Choice(pipelined(), "heuristic")
    assert len(caught) == 1


def test_read_only_table_still_dispatches_tuned_without_warning(table, monkeypatch, fresh_warning_state):
    p = problem()
    record(table, mma(), 100.0, p)
    keep_open = sqlite3.connect(table.path)  # keeps the WAL index, as a running tuner would
    keep_open.execute("SELECT 1 FROM results").fetchall()
    real_connect = sqlite3.connect

    def read_only_connect(database, *args, uri=False, **kwargs):  # SQLite itself refuses writes
        if not uri:
            database, uri = f"file:{database}?mode=ro", True
        return real_connect(database, *args, uri=uri, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only_connect)
    try:
        ro = TuningTable(table.path)
        assert ro.mode == "ro"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert Registry(hashes(mma(), pipelined()), ro, ENV).choose(p) == Choice(mma(), "tuned")
    finally:
        keep_open.close()


def test_padding_families_take_smaller_head_dims():
    """Head dims between the built ones go to the next larger variant of a family that pads
    (scalar; sm90), never to one that does not (mma, pipelined), and the build command names
    the head dim to build."""
    from flashcore_codegen.families import Sm90Config

    sm90 = Sm90Config(**BF16_CAUSAL, block_m=128, block_n=128, stages=2, schedule=1, persistent=1).name
    sm90_64 = Sm90Config(**(BF16_CAUSAL | {"head_dim": 64}), block_m=128, block_n=128, stages=2, schedule=1,
                         persistent=1).name
    reg = Registry(hashes(pipelined(), mma(), scalar(), sm90, sm90_64))
    assert sorted(reg.computing(problem(head_dim=96))) == sorted([scalar(), sm90])
    assert sorted(reg.computing(problem(head_dim=72))) == sorted([scalar(), sm90])
    assert reg.computing(problem(head_dim=64)) == [sm90_64]  # exact only: never a larger padded one
    assert reg.computing(problem(head_dim=40)) == [sm90_64]
    assert reg.choose(problem(head_dim=96)).variant == sm90
    assert reg.computing(problem(head_dim=100)) == []  # not a multiple of 8
    assert "--head-dim 128" in build_command(problem(head_dim=80))
    assert "--head-dim 256" in build_command(problem(head_dim=200))


def test_a_value_head_dim_of_its_own_runs_on_the_padding_variant_of_the_larger():
    """Q/K 192 with V 128 (DeepSeek-style) or Q/K 64 with V 128: the padding families' variant of
    the larger head dim among the family's own (sm90 has 192); a variant of exactly one of them,
    of a larger head dim than the family's smallest fit, or one that does not pad, never."""
    from flashcore_codegen.families import Sm90Config

    def sm90(d):
        return Sm90Config(**(BF16_CAUSAL | {"head_dim": d}), block_m=128, block_n=128, stages=2, schedule=1,
                          persistent=1).name

    reg = Registry(hashes(pipelined(), mma(), scalar(), sm90(128), sm90(64), sm90(192), sm90(256),
                          pipelined(head_dim=64)))
    assert reg.computing(problem(head_dim=192, head_dim_v=128)) == [sm90(192)]
    assert reg.computing(problem(head_dim=160)) == [sm90(192)]
    assert reg.computing(problem(head_dim=200)) == [sm90(256)]
    assert sorted(reg.computing(problem(head_dim=64, head_dim_v=128))) == sorted([scalar(), sm90(128)])
    assert sorted(reg.computing(problem(head_dim=128, head_dim_v=64))) == sorted([scalar(), sm90(128)])
    assert reg.computing(problem(head_dim=64, head_dim_v=64)) == reg.computing(problem(head_dim=64))
    assert reg.computing(problem(head_dim=64, head_dim_v=100)) == []  # not a multiple of 8
    assert reg.choose(problem(head_dim=192, head_dim_v=128)).variant == sm90(192)
    assert "--head-dim 192" in build_command(problem(head_dim=192, head_dim_v=128))
    with pytest.raises(MissingVariantError, match="value head_dim 128.*--head-dim 192"):
        Registry(hashes(sm90(128), sm90(256))).choose(problem(head_dim=192, head_dim_v=128))


@pytest.mark.parametrize("shape, splits", [
    # The tuned long-key shapes (B, H, Sq, Sk) and their measured winners (non-causal, H100).
    ((1, 8, 64, 8192), 8), ((1, 8, 128, 4096), 4), ((1, 32, 64, 4096), 2), ((4, 8, 64, 2048), 2),
    # Enough query tiles, or too few keys: no split.
    ((1, 8, 512, 512), 1), ((1, 8, 1024, 1024), 1), ((4, 16, 4096, 4096), 1), ((1, 8, 64, 256), 1),
    # Untuned: each CTA keeps >= 2 key tiles; of equally long chains (the split model), the fewer splits.
    ((1, 8, 64, 2048), 8), ((1, 8, 64, 1024), 4), ((1, 1, 64, 65536), 8), ((2, 16, 64, 8192), 2),
    ((1, 16, 128, 16384), 2),
])
def test_preferred_splits_follows_query_tiles_and_keys(shape, splits):
    b, h, sq, sk = shape
    p = Problem("bf16", 128, False, b, h, sq, sk)
    assert registry_module.preferred_splits(p.key) == splits
    # Causal: bottom-right rows see the keys an unmasked row sees, top-left ones at most Sq.
    assert registry_module.preferred_splits(Problem("bf16", 128, True, b, h, sq, sk, bottom_right=True).key) == splits
    top_left = Problem("bf16", 128, True, b, h, sq, sk).key
    assert registry_module.preferred_splits(top_left) == (splits if sq == sk else 1)


def test_preferred_splits_scales_with_the_sm_count():
    key = Problem("bf16", 128, False, 1, 8, 64, 8192).key
    # 8 query tiles of 64 key tiles: on 16 SMs 16 CTAs of a cluster of 2 are one wave of 32-tile chains
    # (no split: 64); clusters of 4 and 8 fit half the SMs at once.
    assert [registry_module.preferred_splits(key, sms) for sms in (16, 32, 66, 132)] == [2, 2, 4, 8]


def test_heuristic_counts_the_grid_not_the_keys_bucket():
    """Two shapes of one key whose grids differ: bf16 D64 decoding over 8k keys (8 KV heads x 4 rows)
    took clusters of 4 at B3 (96 CTAs, one wave of the four-CTA slots; kv2 1.70x) and clusters of 2
    at B4 (128 CTAs in fours do not fit; tuning_table-2026-11-29T0950-*). Untuned, dispatch decides
    each from its own grid, and its cache keeps the two apart."""
    from flashcore_codegen.space import default_configs

    b3, b4 = (Problem("bf16", 64, False, b, 8, 4, 8192) for b in (3, 4))
    assert b3.key == b4.key
    reg = Registry(hashes(*(c.name for c in default_configs())))
    picks = [reg.choose(p) for p in (b3, b4, b3)]
    assert [registry_module.config_from_name(c.variant).splits for c in picks] == [4, 2, 4]
    assert {c.reason for c in picks} == {"heuristic"}
    assert picks[0].variant == reg.candidates(b3)[0] and picks[1].variant == reg.candidates(b4)[0]


def test_a_split_the_model_rules_out_does_not_rank_first_for_its_tile():
    """D256 decoding (8, 8 KV heads, 2 rows, 8k keys): the model wants clusters of 2 (not built at
    D256) and rules out the built splits (256 or 512 CTAs: past two waves); the unsplit 128-row tile
    won (147.6 us; the cluster of 4, first while block_m ranked before the chain, 1.23x;
    tuning_table-2026-11-29T0950-*)."""
    from flashcore_codegen.space import default_configs

    reg = Registry(hashes(*(c.name for c in default_configs())))
    pick = registry_module.config_from_name(reg.choose(Problem("bf16", 256, False, 8, 8, 2, 8192)).variant)
    assert pick.splits == 1 and pick.block_m == 128, pick.name


def test_only_clusters_of_8_walk_slower():
    """The model's chain for one wave of 4-CTA clusters is their key tiles plus the cluster's
    combine; clusters of 8 walk 10 % slower."""
    key = Problem("bf16", 128, False, 3, 8, 4, 8192).grid_key  # 24 query tiles of 64 key tiles
    assert registry_module.split_cost(key, 4, 0) == 64 / 4 + registry_module.SPLIT_KV_CLUSTER_COST_TILES
    one_wave = Problem("bf16", 128, False, 1, 8, 4, 8192).grid_key  # 8 tiles x 8 CTAs
    assert registry_module.split_cost(one_wave, 8, 0) == pytest.approx(
        64 / 8 * registry_module.SPLIT_KV_SLOW_CLUSTER_TILE_COST + registry_module.SPLIT_KV_CLUSTER_COST_TILES)


def test_heuristic_picks_split_kv_for_short_queries_over_long_keys():
    """The untuned heuristic takes the cluster size preferred_splits names, before block_n (a
    64x64 one-CTA tile must not win by its nearer key tile), with the SM count of the registry's
    environment; the 64-row tiles even where Sq > 64."""
    from flashcore_codegen.families import Sm90Config

    def sm90(m, n, splits, persistent=0):
        return Sm90Config(dtype="bf16", head_dim=128, causal=False, block_m=m, block_n=n, stages=2, schedule=1,
                          persistent=persistent, splits=splits).name

    names = [sm90(64, 128, s) for s in (1, 2, 4, 8)] + [sm90(64, 64, 1), sm90(128, 128, 1, persistent=1)]
    reg = Registry(hashes(*names))
    short = dict(dtype="bf16", head_dim=128, causal=False, batch=1, heads=8)
    assert reg.choose(Problem(**short, seqlen_q=64, seqlen_k=8192)).variant == sm90(64, 128, 8)
    assert reg.choose(Problem(**short, seqlen_q=128, seqlen_k=4096)).variant == sm90(64, 128, 4)
    assert reg.choose(Problem(**short, seqlen_q=1024, seqlen_k=1024)).variant == sm90(128, 128, 1, persistent=1)
    causal = Problem(**(short | {"causal": True}), seqlen_q=64, seqlen_k=8192)
    assert registry_module.preferred_splits(causal.key) == 1  # top-left: a row sees at most 64 keys
    decode = Problem(**(short | {"causal": True}), seqlen_q=64, seqlen_k=8192, bottom_right=True)
    assert registry_module.preferred_splits(decode.key) == 8
    windowed = Problem(**(short | {"causal": True}), seqlen_q=64, seqlen_k=8192, bottom_right=True, window=(511, 0))
    # 4 key tiles a row: a cluster of 2 (2 tiles each plus the cluster's ~2) ties one CTA; the fewer splits.
    assert windowed.key.window == 512 and registry_module.preferred_splits(windowed.key) == 1
    small_gpu = Environment("a GPU of 32 SMs", 32, "12.8", "2.8.0", "4.2.0.0")
    p = Problem(**short, seqlen_q=64, seqlen_k=8192)
    assert Registry(hashes(*names), env=small_gpu).choose(p).variant == sm90(64, 128, 2)


def test_heuristic_prefers_the_global_combine_for_few_rows():
    """A query tile of few rows combines through global memory (no cluster: any split count, 16 CTAs
    a tile included), whole 64-row tiles through the cluster (the last CTA's serial combine of every
    row costs more); a problem that wants fewer splits (or none) is not pulled to a larger size."""
    from flashcore_codegen.families import Sm90Config

    def sm90(splits, combine=0, m=64, persistent=0):
        return Sm90Config(dtype="bf16", head_dim=128, causal=False, block_m=m, block_n=128, stages=2, schedule=1,
                          persistent=persistent, splits=splits, combine=combine).name

    names = [sm90(2), sm90(4), sm90(8), sm90(8, 1), sm90(16, 1), sm90(1, m=128, persistent=1)]
    reg = Registry(hashes(*names))
    short = dict(dtype="bf16", head_dim=128, causal=False, batch=1, heads=8)
    assert reg.choose(Problem(**short, seqlen_q=4, seqlen_k=16384)).variant == sm90(16, 1)
    assert reg.choose(Problem(**short, seqlen_q=8, seqlen_k=16384)).variant == sm90(16, 1)
    assert reg.choose(Problem(**short, seqlen_q=64, seqlen_k=8192)).variant == sm90(8)
    assert reg.choose(Problem(**short, seqlen_q=128, seqlen_k=4096)).variant == sm90(4)
    assert reg.choose(Problem(**short, seqlen_q=1024, seqlen_k=1024)).variant == sm90(1, m=128, persistent=1)
    # Without a tile combining through global memory, the cluster of 8.
    assert Registry(hashes(*names[:3], names[5])).choose(Problem(**short, seqlen_q=4, seqlen_k=16384)).variant \
        == sm90(8)


# The H200's decoding shapes (packed GQA problems: B, KV heads, rows of a tile, keys; bf16 D128,
# non-causal) tuned over the default candidates, and the split the model picks from the defaults:
# the measured winner, or where marked the one the given % behind it (benchmarks/NOTES.md,
# 2026-11-29 06:37- and 09:44-; tuning_table-2026-11-29T0645-*, -0700-*, -0904-* and -0950-*, and the
# 2026-11-28 15:24 table).
DECODE_PICKS = [
    ((1, 8, 4, 8192), (16, 1)), ((1, 8, 4, 16384), (16, 1)), ((1, 8, 4, 32768), (16, 1)),
    ((1, 8, 4, 65536), (16, 1)), ((1, 8, 4, 131072), (16, 1)), ((1, 4, 7, 32768), (16, 1)),
    ((1, 2, 4, 65536), (16, 1)), ((2, 8, 4, 32768), (8, 1)), ((2, 8, 4, 65536), (8, 1)),
    ((4, 8, 4, 16384), (8, 1)), ((8, 8, 4, 8192), (2, 0)), ((1, 8, 2, 4096), (8, 0)), ((1, 8, 8, 2048), (8, 0)),
    ((2, 8, 4, 8192), (8, 1)), ((2, 8, 4, 16384), (8, 1)), ((4, 8, 4, 32768), (8, 1)),
    # A cluster of 4 in one wave (96 CTAs at B3: the grid's sizes, not B4's bucket, where 128 do not fit).
    ((3, 8, 4, 8192), (4, 0)), ((3, 8, 4, 16384), (4, 0)),
    # Qwen2-7B's 4 KV heads x 7 rows, held out of the fit of 2026-11-29 06:37 (tuned 09:50).
    ((1, 4, 7, 4096), (8, 0)), ((1, 4, 7, 8192), (16, 1)), ((1, 4, 7, 16384), (16, 1)), ((2, 4, 7, 8192), (16, 1)),
    ((3, 4, 7, 8192), (8, 0)), ((5, 4, 7, 8192), (4, 0)), ((6, 4, 7, 8192), (4, 0)), ((16, 4, 7, 4096), (2, 0)),
    # Held out of that fit too (tuned 10:03); B7's 28 clusters of 4 ran as one wave (the fit of 4s: 0.85).
    ((4, 4, 7, 8192), (8, 1)), ((7, 4, 7, 8192), (4, 0)), ((3, 8, 4, 4096), (4, 0)), ((6, 8, 4, 16384), (2, 0)),
    ((3, 4, 7, 16384), (8, 1)),  # the cluster of 8 2.8 % ahead
    ((7, 8, 4, 8192), (2, 0)),  # the cluster of 4 2.2 % ahead
    ((6, 8, 4, 8192), (2, 0)),  # the cluster of 4 2.6 % ahead
    ((4, 8, 4, 8192), (8, 1)),  # the cluster of 2 4.0 % ahead
    ((8, 4, 7, 8192), (8, 1)),  # the cluster of 2 4.6 % ahead
    ((4, 4, 7, 4096), (8, 1)),  # the cluster of 4 2.9 % ahead
    ((4, 8, 4, 4097), (8, 1)),  # Mistral's window: the cluster of 2 8.5 % ahead
]


@pytest.mark.parametrize("shape, split", DECODE_PICKS)
def test_split_model_picks_the_decoding_winners_from_the_defaults(shape, split):
    from flashcore_codegen.space import default_configs

    b, h, rows, keys = shape
    choice = Registry(hashes(*(c.name for c in default_configs()))).choose(Problem("bf16", 128, False, b, h, rows, keys))
    best = registry_module.config_from_name(choice.variant)
    assert choice.reason == "heuristic"
    assert (getattr(best, "splits", 1), getattr(best, "combine", 0)) == split, best.name


def test_global_combine_refuses_calls_whose_scratch_is_too_large():
    """Its scratch (fp32 partial O per share of every query tile) is bounded: past 2 GB dispatch
    skips the variant, with the kernel's own reason."""
    from flashcore_codegen.families import SM90_SPLIT_WORKSPACE_REASON, Sm90Config

    cfg = Sm90Config(dtype="bf16", head_dim=128, causal=False, block_m=64, block_n=128, stages=2, schedule=1,
                     persistent=0, splits=16, combine=1)
    # (1, 8, 4 rows, 32768 keys): 8 query tiles of 16 shares of 64 x 128 floats, counters and LSEs.
    assert cfg.workspace_bytes(1, 8, 4) == 256 + 8 * 16 * 64 * 4 + 8 * 16 * 64 * 128 * 4
    assert cfg.can_implement(Problem("bf16", 128, False, 1, 8, 4, 32768)) is None
    big = Problem("bf16", 128, False, 4, 32, 4096, 4096)  # 8192 query tiles: 4.3 GB
    assert cfg.can_implement(big) == SM90_SPLIT_WORKSPACE_REASON
    names = [cfg.name, Sm90Config(dtype="bf16", head_dim=128, causal=False, block_m=128, block_n=128, stages=2,
                                  schedule=1, persistent=1, splits=1).name]
    assert Registry(hashes(*names)).choose(big).variant == names[1]
    assert Sm90Config(dtype="bf16", head_dim=128, causal=True, block_m=128, block_n=128, stages=2, schedule=1,
                      persistent=1, splits=1).workspace_bytes(4, 32, 4096) == 4
    # Non-causal: the multi-WG persistent kernels claim tiles dynamically too where a last query
    # tile is short (idle WGs make it cheaper), statically where every tile is whole; the one-WG
    # ones always statically.
    m192 = Sm90Config(dtype="bf16", head_dim=64, causal=False, block_m=192, block_n=128, stages=2, schedule=1,
                      persistent=1, splits=1)
    assert m192.workspace_bytes(8, 32, 1024) == 4
    assert m192.workspace_bytes(8, 32, 1152) == 0
    assert Sm90Config(dtype="bf16", head_dim=64, causal=False, block_m=64, block_n=128, stages=2, schedule=1,
                      persistent=1, splits=1, ctas_per_sm=2).workspace_bytes(8, 32, 1024) == 0


def test_packed_gqa_problems_count_a_key_value_heads_tiles():
    """A problem whose GQA group is packed into rows has B x Hkv x ceil(Sq x Gp / 64) query tiles
    of Sq x G real rows: the split-KV size and the global combine are judged on those, and only the
    packing variants are candidates."""
    from flashcore_codegen.families import Sm90Config

    def sm90(splits, combine=0, pack=0):
        return Sm90Config(dtype="bf16", head_dim=128, causal=True, block_m=64, block_n=128, stages=2, schedule=1,
                          persistent=0, splits=splits, combine=combine, pack_gqa=pack).name

    spec = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True, group=4)  # 8 tiles of 16 rows
    assert registry_module.query_tiles_of(spec.key) == 8 and registry_module.rows_per_tile(spec.key) == 16
    assert registry_module.preferred_splits(spec.key) == 8
    two_rows = Problem("bf16", 128, True, 1, 32, 2, 8192, bottom_right=True, group=4)  # 8 rows a tile
    names = [sm90(2), sm90(8), sm90(2, pack=1), sm90(8, pack=1), sm90(8, 1, pack=1)]
    reg = Registry(hashes(*names))
    assert set(reg.candidates(spec)) == {sm90(2, pack=1), sm90(8, pack=1), sm90(8, 1, pack=1)}
    assert reg.choose(spec).variant == sm90(8, pack=1)
    # 8 rows a tile may combine through global memory, but at 8 CTAs a tile on 8 query tiles the cluster of 8
    # fits the SMs and its combine is cheaper (the split model; (1, 8, 4 rows, 8192): 14.9 against 16.2 us).
    assert reg.choose(two_rows).variant == sm90(8, pack=1)
    assert Registry(hashes(*names[:2], sm90(8, 1, pack=1))).choose(two_rows).variant == sm90(8, 1, pack=1)
    assert sm90(2, pack=1) not in reg.candidates(Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True))


@pytest.mark.parametrize("head_dim, heads", [(128, 16), (256, 8)])
@pytest.mark.parametrize("seqlen", [2048, 16384])
def test_heuristic_never_picks_a_stream_k_twin(head_dim, heads, seqlen):
    """The stream-K twins (built with `--only '*_sk1'`) reach dispatch through tuned rows only (README,
    Dispatch): beside the default set the heuristic takes the D128 ping-pong tile and the D256 128x64 one,
    not a `_sk1` tile."""
    from flashcore_codegen.space import default_configs

    problem = Problem("bf16", head_dim, False, 1, heads, seqlen, seqlen)
    candidates = [c for c in default_configs() if c.dtype == "bf16" and c.head_dim == head_dim and not c.causal]
    twins = [dataclasses.replace(c, stream_k=1) for c in candidates if c.family == "sm90"]
    twins = [t for t in twins if t.is_valid]
    assert twins, "no valid stream-K twin of a default tile"
    candidates += twins
    best = min(candidates, key=lambda c: heuristic_rank(c, problem, 132))
    assert not getattr(best, "stream_k", 0), best.name
