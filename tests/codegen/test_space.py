import fnmatch
import itertools

import pytest

from flashcore_codegen.config import DTYPES, all_head_dims
from flashcore_codegen.config import FAMILIES
from flashcore_codegen.families import LADDER_PROBLEMS
from flashcore_codegen.space import all_configs, default_configs, select

PROBLEMS = list(itertools.product(DTYPES, all_head_dims(), (False, True)))


@pytest.fixture(scope="module")
def space():
    return list(all_configs())


def test_all_configs(space):
    assert len(space) == 556 + 35116  # SM80 families + sm90
    assert all(c.is_valid for c in space)
    everything = list(all_configs(valid_only=False))
    assert len(everything) == 912 + 1918080
    assert sum(not c.is_valid for c in everything) == 356 + 1882964


@pytest.mark.parametrize("family, dtype, head_dim, causal", [
    (["sm90"], ["fp16"], [256], False),
    (["mma", "scalar"], None, [128], None),
    (None, ["bf16"], [64], True),
])
def test_filters_narrow_the_enumeration_exactly(space, family, dtype, head_dim, causal):
    # The CLI enumerates only what its filters leave (seconds instead of the whole space's tens).
    narrowed = list(all_configs(family=family, dtype=dtype, head_dim=head_dim, causal=causal))
    assert sorted(c.name for c in narrowed) == [c.name for c in select(space, family, dtype, head_dim, causal)]
    assert narrowed


def test_default_configs_are_valid_and_unique():
    defaults = default_configs()
    assert defaults, "the default set is empty"
    bad = {c.name: c.validation_errors() for c in defaults if not c.is_valid}
    assert bad == {}
    assert len({c.name for c in defaults}) == len(defaults)
    assert {c.family for c in defaults} == {"scalar", "mma", "pipelined", "sm90"}


@pytest.mark.parametrize("family, count", [("pipelined", 19), ("sm90", 90)])
def test_default_tiles_are_all_valid(family, count):
    # A tile listed in DEFAULT_TILES that fails validation would silently drop out.
    cls = FAMILIES[family]
    built = [c for c in default_configs() if c.family == family]
    problems = [(dt, d, c) for dt in DTYPES for d in cls.DEFAULT_TILES for c in (False, True)]
    full = cls.DEFAULT_ALL_TILES_FOR
    expected = sum(len(cls.default_tiles(d, c)) if full is None or (dt, d, c) in full else 1 for dt, d, c in problems)
    assert len(built) == expected == count
    assert len(default_configs()) == 113


def test_default_set_is_the_spaces_defaults_in_its_order(space):
    """default_configs() builds from the families' DEFAULT_TILES; it must be exactly the valid space's
    configs that call themselves default, in the space's order."""
    assert default_configs() == [c for c in space if c.is_default()]


def test_mask_only_default_tiles():
    """sm90's one-CTA 64-row D64 tile is built for non-causal problems only, its D64 128x128 tiles
    for causal ones only; the split-KV clusters for both (bottom-right decoding is causal)."""
    names = {c.name for c in default_configs()}
    for dtype in DTYPES:
        for d in (64, 128):
            for splits in (2, 4, 8):
                for mask in ("full", "causal"):
                    assert f"fc_sm90_{dtype}_d{d}_{mask}_m64_n128_s2_sch1_p0_kv{splits}" in names
        assert f"fc_sm90_{dtype}_d64_full_m64_n128_s2_sch1_p0_kv1" in names
        # D256 clusters for GQA decoding's packed (unmasked) problems only.
        assert f"fc_sm90_{dtype}_d256_full_m64_n64_s2_sch1_p0_kv4" in names
        assert f"fc_sm90_{dtype}_d256_causal_m64_n64_s2_sch1_p0_kv4" not in names
        assert f"fc_sm90_{dtype}_d64_causal_m64_n128_s2_sch1_p0_kv1" not in names
        # Split-KV through global memory, for the same packed (unmasked) problems.
        for d, tile in ((128, "m64_n128_s2_sch1_p0_kv8"), (256, "m64_n64_s2_sch1_p0_kv8")):
            assert f"fc_sm90_{dtype}_d{d}_full_{tile}_g1" in names
            assert f"fc_sm90_{dtype}_d{d}_causal_{tile}_g1" not in names
        assert f"fc_sm90_{dtype}_d64_full_m64_n128_s2_sch1_p0_kv8_g1" not in names  # lost every D64 key
        # 16 global splits: one sequence's GQA decoding over 32k keys (128 CTAs, H200), non-causal only.
        assert f"fc_sm90_{dtype}_d128_full_m64_n128_s2_sch1_p0_kv16_g1" in names
        assert f"fc_sm90_{dtype}_d128_causal_m64_n128_s2_sch1_p0_kv16_g1" not in names
        # GQA packing into rows, for masked short queries (speculative decoding) only.
        for d, tile in ((64, "m64_n128_s2_sch1_p0_kv2"), (64, "m64_n128_s2_sch1_p0_kv8"),
                        (128, "m64_n128_s2_sch1_p0_kv2"), (128, "m64_n128_s2_sch1_p0_kv8"),
                        (128, "m64_n128_s2_sch1_p0_kv8_g1"), (256, "m64_n64_s2_sch1_p0_kv4"),
                        (256, "m64_n64_s2_sch1_p0_kv8_g1")):
            assert f"fc_sm90_{dtype}_d{d}_causal_{tile}_pq1" in names
            assert f"fc_sm90_{dtype}_d{d}_full_{tile}_pq1" not in names
        for sch in (1, 2):
            assert f"fc_sm90_{dtype}_d64_full_m128_n128_s2_sch{sch}_p1_kv1_lr1" not in names
            assert f"fc_sm90_{dtype}_d128_full_m128_n128_s2_sch{sch}_p1_kv1_lr1" in names
        # D64 causal 128x128: the overlapped schedule only (the flat rules' pick for windows and bottom-right
        # calls; ping-pong served no call: benchmarks/experiments/unpicked_defaults.py).
        assert f"fc_sm90_{dtype}_d64_causal_m128_n128_s2_sch1_p1_kv1_lr1" in names
        assert f"fc_sm90_{dtype}_d64_causal_m128_n128_s2_sch2_p1_kv1_lr1" not in names
    cls = FAMILIES["sm90"]
    listed = {(d, tuple(t)) for d, tiles in cls.DEFAULT_TILES.items() for t in tiles}
    assert set(cls.DEFAULT_MASK_ONLY) <= listed  # a typo there would restrict nothing


def test_pipelined_builds_every_tile_for_the_ladder_only():
    """The ladder's problems get every pipelined default tile (its best-tile rung); the others
    the first of their head dim."""
    pipelined = [c for c in default_configs() if c.family == "pipelined"]
    per_problem = {}
    for c in pipelined:
        per_problem.setdefault((c.dtype, c.head_dim, c.causal), []).append(c)
    assert len(per_problem[("fp16", 64, False)]) == 6 and len(per_problem[("bf16", 128, False)]) == 3
    assert len(per_problem[("bf16", 64, False)]) == 1 and len(per_problem[("fp16", 256, True)]) == 1
    assert per_problem[("bf16", 64, True)][0].name == "fc_pipelined_bf16_d64_causal_m128_n128_w4_s2_lean1"


@pytest.mark.parametrize("family, dtype, head_dim, causal",
                         [(f, *p) for f in ("pipelined", "sm90") for p in PROBLEMS if p[1] in FAMILIES[f].HEAD_DIMS])
def test_every_problem_has_default_variants(family, dtype, head_dim, causal):
    found = [c for c in default_configs()
             if (c.family, c.dtype, c.head_dim, c.causal) == (family, dtype, head_dim, causal)]
    cls = FAMILIES[family]
    every = cls.DEFAULT_ALL_TILES_FOR is None or (dtype, head_dim, causal) in cls.DEFAULT_ALL_TILES_FOR
    assert len(found) == (len(cls.default_tiles(head_dim, causal)) if every else 1)


def test_default_ladder_rungs():
    ladder = sorted(c.name for c in default_configs() if c.family in ("scalar", "mma"))
    assert ladder == [
        "fc_mma_bf16_d128_full_m64_n64_w4",
        "fc_mma_fp16_d64_full_m64_n64_w4",
        "fc_scalar_bf16_d128_full_m16_w4",
        "fc_scalar_fp16_d64_full_m16_w4",
    ]
    assert {(c.dtype, c.head_dim, c.causal) for c in default_configs() if c.family in ("scalar", "mma")} == \
        LADDER_PROBLEMS


# -- select ---------------------------------------------------------------------------------

def test_select_without_filters_sorts_by_name(space):
    got = select(space)
    assert [c.name for c in got] == sorted(c.name for c in space)
    assert select(iter(space)) == got  # any iterable


def test_select_family(space):
    mma = select(space, family=["mma"])
    assert len(mma) == 20 and {c.family for c in mma} == {"mma"}
    assert len(select(space, family=("scalar", "mma"))) == 44


def test_select_dtype_head_dim_causal(space):
    space = [c for c in space if c.family != "sm90"]  # the counts below are the SM80 families'
    assert len(select(space, dtype=["bf16"])) == 278
    assert {c.dtype for c in select(space, dtype=["bf16"])} == {"bf16"}
    d256 = select(space, head_dim=[256])
    assert len(d256) == 12 + 104 and {c.head_dim for c in d256} == {256}
    assert len(select(space, head_dim=[64])) == 8 + 8 + 216
    assert len(select(space, head_dim=[64, 256])) == 232 + 116
    causal = select(space, causal=True)
    full = select(space, causal=False)
    assert len(causal) == len(full) == 278
    assert all(c.causal for c in causal) and not any(c.causal for c in full)


def test_select_filters_combine(space):
    got = select(space, family=["scalar", "mma"], dtype=["fp16"], causal=True)
    assert len(got) == 11
    assert all(c.family in ("scalar", "mma") and c.dtype == "fp16" and c.causal for c in got)
    got = select(space, family=["pipelined"], head_dim=[256])
    assert len(got) == 104
    assert sum(c.lean for c in got) == 52  # every tile comes plain and register-lean


def test_select_only_glob(space):
    got = select(space, only=["fc_pipelined_*_d64_*_s3_*"])
    assert len(got) == 72
    assert all(c.family == "pipelined" and c.head_dim == 64 and c.stages == 3 for c in got)
    exact = select(space, only=["fc_scalar_fp16_d64_full_m16_w4"])
    assert [c.name for c in exact] == ["fc_scalar_fp16_d64_full_m16_w4"]
    either = select(space, only=["fc_scalar_fp16_d64_full_m16_w4", "fc_mma_bf16_d128_*"])
    assert [c.name for c in either] == [
        "fc_mma_bf16_d128_causal_m128_n64_w4",
        "fc_mma_bf16_d128_causal_m64_n64_w4",
        "fc_mma_bf16_d128_full_m128_n64_w4",
        "fc_mma_bf16_d128_full_m64_n64_w4",
        "fc_scalar_fp16_d64_full_m16_w4",
    ]
    assert select(space, only=["FC_*"]) == []  # case-sensitive, like the table's globs
    assert select(space, only=["fc_scalar_*"], family=["mma"]) == []


def test_spill_notes_name_default_variants_only():
    from flashcore_codegen.config import FAMILIES
    from flashcore_codegen.space import spill_note

    for cls in FAMILIES.values():
        names = [c.name for c in default_configs() if c.family == cls.family]
        for pattern in cls.MEASURED_SPILLS:
            assert any(fnmatch.fnmatchcase(n, pattern) for n in names), f"{pattern} explains no default {cls.family} variant"
    assert spill_note("fc_pipelined_bf16_d128_full_m128_n64_w4_s2_lean0").startswith("spills")
    assert spill_note("fc_pipelined_bf16_d128_full_m64_n64_w4_s2_lean0") is None
    assert spill_note("fc_sm90_bf16_d64_causal_m192_n128_s2_sch1_p1_kv1_lr1").startswith("spills")
