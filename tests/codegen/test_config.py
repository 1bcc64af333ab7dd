import itertools
import re
from dataclasses import dataclass, replace
from typing import ClassVar

import pytest

import flashcore_codegen  # noqa: F401  (registers the families)
from flashcore_codegen.config import (
    ACCUMULATOR_REGISTER_BUDGET,
    FAMILIES,
    SMEM_LIMIT_BYTES,
    InvalidConfig,
    KernelConfig,
    config_from_name,
    kernel_head_dim,
)
from flashcore_codegen.families import MmaConfig, PipelinedConfig, ScalarConfig

NAME_RE = re.compile(r"^fc_(scalar|mma|pipelined|sm90)_(fp16|bf16)_d(64|128|192|256)_(full|causal)(_[a-z]+\d+)+$")
# The size of the space as it is now: a change to AXES or to the validation rules must update these.
SPACE_SIZES = {"scalar": (24, 24), "mma": (24, 20), "pipelined": (864, 512), "sm90": (1918080, 35116)}  # (all, valid)


# -- families ------------------------------------------------------------------------------

def test_families_registered_in_ladder_order():
    assert set(FAMILIES) == {"scalar", "mma", "pipelined", "sm90"}
    assert FAMILIES["scalar"] is ScalarConfig
    assert FAMILIES["mma"] is MmaConfig
    assert FAMILIES["pipelined"] is PipelinedConfig
    steps = {name: cls.ladder_step for name, cls in FAMILIES.items()}
    assert steps == {"scalar": 1, "mma": 2, "pipelined": 3, "sm90": 6}
    assert sorted(FAMILIES, key=lambda f: FAMILIES[f].ladder_step) == ["scalar", "mma", "pipelined", "sm90"]


def test_family_defined_twice_is_rejected():
    with pytest.raises(TypeError, match="kernel family 'scalar' defined twice"):
        class Again(ScalarConfig):  # noqa: F841
            family = "scalar"
    assert FAMILIES["scalar"] is ScalarConfig


def test_tile_fields_per_family():
    abbrs = {f: [(x.name, x.metadata["abbr"]) for x in cls.tile_fields()] for f, cls in FAMILIES.items()}
    assert abbrs == {
        "scalar": [("block_m", "m"), ("warps", "w")],
        "mma": [("block_m", "m"), ("block_n", "n"), ("warps", "w")],
        "pipelined": [("block_m", "m"), ("block_n", "n"), ("warps", "w"), ("stages", "s"), ("lean", "lean")],
        "sm90": [("block_m", "m"), ("block_n", "n"), ("stages", "s"), ("schedule", "sch"), ("persistent", "p"),
                 ("splits", "kv"), ("ctas_per_sm", "c"), ("combine", "g"), ("pack_gqa", "pq"),
                     ("head_dim_v", "v"), ("key_split_wgs", "ks"), ("lazy_rescale", "lr"), ("stream_k", "sk"),
                     ("wg_keys", "wk")],
    }


@pytest.mark.parametrize("family", sorted(SPACE_SIZES))
def test_space_counts_are_stable(family):
    space = list(FAMILIES[family].space())
    valid = [c for c in space if c.is_valid]
    assert (len(space), len(valid)) == SPACE_SIZES[family]
    assert len({c.name for c in space}) == len(space), "names must be unique"


# -- naming --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "config, name",
    [
        (ScalarConfig("fp16", 64, False, block_m=16, warps=4), "fc_scalar_fp16_d64_full_m16_w4"),
        (MmaConfig("bf16", 128, True, block_m=128, block_n=64, warps=4), "fc_mma_bf16_d128_causal_m128_n64_w4"),
        (PipelinedConfig("bf16", 256, True, block_m=64, block_n=32, warps=4, stages=2),
         "fc_pipelined_bf16_d256_causal_m64_n32_w4_s2_lean0"),
    ],
)
def test_name_format(config, name):
    assert config.name == name
    assert config.template == f"{config.family}.cu.j2"
    assert config_from_name(name) == config


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip_every_valid_config(family):
    valid = [c for c in FAMILIES[family].space() if c.is_valid]
    assert valid
    for config in valid:
        assert NAME_RE.match(config.name), config.name
        assert config.name.startswith(f"fc_{family}_")
        parsed = config_from_name(config.name)
        assert type(parsed) is type(config)
        assert parsed == config
        assert parsed.name == config.name


def test_config_from_name_parses_without_validating():
    config = config_from_name("fc_scalar_fp16_d96_full_m16_w4")
    assert config.head_dim == 96
    assert not config.is_valid


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "not a flashcore variant name: ''"),
        ("fc_scalar_fp16_d64", "not a flashcore variant name"),
        ("xx_scalar_fp16_d64_full_m16_w4", "not a flashcore variant name"),
        ("fc_conv_fp16_d64_full_m16_w4", "unknown kernel family 'conv' in 'fc_conv_fp16_d64_full_m16_w4'; "
                                         "known: ['mma', 'pipelined', 'scalar', 'sm90']"),
        ("fc_scalar_fp16_64_full_m16_w4", "malformed variant name 'fc_scalar_fp16_64_full_m16_w4'"),
        ("fc_scalar_fp16_dxx_full_m16_w4", "malformed variant name 'fc_scalar_fp16_dxx_full_m16_w4'"),
        ("fc_scalar_fp16_d_full_m16_w4", "malformed variant name"),
        ("fc_scalar_fp16_d64_masked_m16_w4", "malformed variant name"),
        ("fc_scalar_fp16_d64_full_m16", "has 1 tile tokens, family scalar needs 2"),
        ("fc_scalar_fp16_d64_full_m16_w4_s2", "has 3 tile tokens, family scalar needs 2"),
        ("fc_pipelined_fp16_d64_full_m64_n64_w4", "has 3 tile tokens, family pipelined needs 5"),
        ("fc_scalar_fp16_d64_full_w4_m16", "malformed tile token 'w4' in 'fc_scalar_fp16_d64_full_w4_m16' "
                                           "(expected m<int>)"),
        ("fc_scalar_fp16_d64_full_m16_wx", "malformed tile token 'wx'"),
        ("fc_scalar_fp16_d64_full_m_w4", "malformed tile token 'm'"),
        ("fc_scalar_fp16_d64_full_m-16_w4", "malformed tile token 'm-16'"),
        ("fc_scalar_fp16_d64_full_m\u00b2_w4", "malformed tile token"),  # str.isdigit() but not int()
        ("fc_scalar_fp16_d064_full_m16_w4", "not canonical (expected 'fc_scalar_fp16_d64_full_m16_w4')"),
        ("fc_scalar_fp16_d64_full_m016_w4", "not canonical (expected 'fc_scalar_fp16_d64_full_m16_w4')"),
    ],
)
def test_malformed_names(name, message):
    with pytest.raises(ValueError) as excinfo:
        config_from_name(name)
    assert message in str(excinfo.value)
    assert not isinstance(excinfo.value, InvalidConfig)


# -- validation ----------------------------------------------------------------------------

def _pipelined(head_dim=64, block_m=128, block_n=64, warps=4, stages=2, dtype="fp16"):
    return PipelinedConfig(dtype, head_dim, False, block_m=block_m, block_n=block_n, warps=warps, stages=stages)


@pytest.mark.parametrize(
    "config",
    [
        ScalarConfig("fp16", 96, False, block_m=16, warps=4),
        MmaConfig("fp16", 96, False, block_m=64, block_n=64, warps=4),
        _pipelined(head_dim=96),
    ],
    ids=lambda c: c.family,
)
def test_rejects_head_dim_96(config):
    assert config.validation_errors() == [f"head_dim 96 not in {config.HEAD_DIMS} (family {config.family})"]
    assert not config.is_valid


@pytest.mark.parametrize(
    "config",
    [
        ScalarConfig("fp32", 64, False, block_m=16, warps=4),
        MmaConfig("fp32", 64, False, block_m=64, block_n=64, warps=4),
        _pipelined(dtype="fp32"),
    ],
    ids=lambda c: c.family,
)
def test_rejects_fp32(config):
    assert config.validation_errors() == ["dtype 'fp32' not in ('fp16', 'bf16')"]


def test_rejects_block_m_not_multiple_of_warp_rows():
    config = _pipelined(block_m=64, warps=8)
    assert config.validation_errors() == [
        "block_m=64 not a multiple of 16*warps=128 (one MMA row tile per warp)"
    ]


def test_rejects_shared_memory_overflow():
    config = _pipelined(head_dim=256, block_m=128, block_n=128, warps=8, stages=3)
    # Q tile + 3 stages of K and V tiles, 2 bytes each.
    assert config.smem_bytes() == (128 * 256 + 2 * 3 * 128 * 256) * 2 == 458752
    assert config.accumulator_registers() == (128 * 256 + 128 * 128) // 256 == 192  # at the budget: allowed
    assert config.validation_errors() == [f"shared memory 458752 B > {SMEM_LIMIT_BYTES} B per block"]
    assert SMEM_LIMIT_BYTES == 232448


def test_rejects_accumulator_register_budget():
    config = _pipelined(head_dim=256, block_m=128, block_n=64, warps=4, stages=2)
    assert config.smem_bytes() == 196608 <= SMEM_LIMIT_BYTES
    assert config.accumulator_registers() == 320
    assert config.validation_errors() == [
        f"320 fp32 accumulator registers per thread > {ACCUMULATOR_REGISTER_BUDGET} (would spill)"
    ]


def test_rejects_values_outside_the_axes():
    assert ScalarConfig("fp16", 64, False, block_m=64, warps=4).validation_errors() == [
        "block_m=64 not in (16, 32)"
    ]
    assert MmaConfig("bf16", 64, False, block_m=64, block_n=128, warps=4).validation_errors() == [
        "block_n=128 not in (64,)"
    ]


def test_scalar_block_m_divisible_by_warps():
    errors = ScalarConfig("fp16", 64, False, block_m=16, warps=3).validation_errors()
    assert errors == ["warps=3 not in (4,)", "block_m=16 not divisible by warps=3"]


def test_rejects_too_many_threads():
    errors = ScalarConfig("fp16", 64, False, block_m=16, warps=64).validation_errors()
    assert "2048 threads per block > 1024" in errors


def test_tensor_core_tile_rules():
    # The tile rules run only once every value is inside the axes: widen them in a test-only
    # class (an empty family name keeps it out of FAMILIES).
    @dataclass(frozen=True)
    class WideMma(MmaConfig):
        family: ClassVar[str] = ""
        AXES: ClassVar[dict] = {"block_m": (64, 128), "block_n": (8, 16, 64), "warps": (4, 8)}

    assert "" not in FAMILIES
    assert WideMma("fp16", 64, False, block_m=64, block_n=8, warps=4).validation_errors() == [
        "block_n=8 not a multiple of 16 (MMA K of the PV product)",
        "block_n=8 not a multiple of 16 rows copied per pass",
    ]
    # 8 warps copy 256 * 8 / 64 = 32 rows per pass.
    assert WideMma("fp16", 128, False, block_m=128, block_n=16, warps=8).validation_errors() == [
        "block_n=16 not a multiple of 32 rows copied per pass",
    ]
    assert WideMma("fp16", 128, False, block_m=128, block_n=64, warps=8).validation_errors() == []
    # Out-of-axes values are reported alone (the tile rules are skipped).
    assert MmaConfig("fp16", 64, False, block_m=64, block_n=8, warps=4).validation_errors() == [
        "block_n=8 not in (64,)"
    ]


def test_check_raises_invalid_config_listing_every_reason():
    config = _pipelined(head_dim=256, block_m=128, block_n=128, warps=4, stages=3)
    with pytest.raises(InvalidConfig) as excinfo:
        config.check()
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.name == "fc_pipelined_fp16_d256_full_m128_n128_w4_s3_lean0"
    assert err.errors == [
        "shared memory 458752 B > 232448 B per block",
        "384 fp32 accumulator registers per thread > 192 (would spill)",
    ]
    assert str(err) == (
        "invalid kernel config fc_pipelined_fp16_d256_full_m128_n128_w4_s3_lean0: "
        "shared memory 458752 B > 232448 B per block; "
        "384 fp32 accumulator registers per thread > 192 (would spill)"
    )


def test_check_returns_valid_config():
    config = _pipelined()
    assert config.check() is config
    assert config.validation_errors() == []


def test_invalid_configs_in_space_are_exactly_the_resource_limited_ones():
    invalid = sorted(c.name for f in ("scalar", "mma") for c in FAMILIES[f].space() if not c.is_valid)
    assert invalid == sorted(
        f"fc_mma_{dt}_d256_{mask}_m128_n64_w4" for dt in ("fp16", "bf16") for mask in ("full", "causal")
    )


# -- resources and template parameters ------------------------------------------------------

def test_resource_model():
    scalar = ScalarConfig("fp16", 128, False, block_m=32, warps=4)
    assert scalar.threads == 128
    assert scalar.block_n == 32 and scalar.rows_per_warp == 8
    assert scalar.smem_bytes() == 4 * (32 * 128 + 32 * 129 + 32 * 128)
    assert scalar.accumulator_registers() == 8 * (128 // 32 + 1)
    mma = MmaConfig("bf16", 128, False, block_m=128, block_n=64, warps=4)
    assert mma.smem_bytes() == (128 * 128 + 2 * 64 * 128) * 2
    assert mma.accumulator_registers() == (128 * 128 + 128 * 64) // 128
    assert _pipelined(stages=3).smem_bytes() == (128 * 64 + 2 * 3 * 64 * 64) * 2


def test_template_params():
    params = PipelinedConfig("bf16", 128, True, block_m=128, block_n=64, warps=4, stages=2).template_params()
    assert params == {
        "dtype": "bf16", "head_dim": 128, "causal": True,
        "block_m": 128, "block_n": 64, "warps": 4, "stages": 2, "lean": 0,
        "name": "fc_pipelined_bf16_d128_causal_m128_n64_w4_s2_lean0",
        "family": "pipelined", "threads": 128,
        "element": "cutlass::bfloat16_t", "mma_atom": "SM80_16x8x16_F32BF16BF16F32_TN",
        "dtype_id": 1, "smem_bytes": (128 * 128 + 2 * 2 * 64 * 128) * 2, "is_causal": "true",
        "arch": "sm_90a", "min_cc": 80, "has_can_implement": True, "has_workspace": False,
            "pads_head_dim": False,
    }
    scalar = ScalarConfig("fp16", 64, False, block_m=16, warps=4).template_params()
    assert scalar["element"] == "cutlass::half_t"
    assert scalar["dtype_id"] == 0
    assert scalar["is_causal"] == "false"
    assert scalar["block_n"] == 32 and scalar["rows_per_warp"] == 4


def test_configs_are_frozen_and_hashable():
    config = _pipelined()
    with pytest.raises(AttributeError):
        config.block_m = 64  # type: ignore[misc]
    assert len({config, _pipelined()}) == 1
    assert isinstance(config, KernelConfig)


# -- the Hopper family -------------------------------------------------------------------------

def test_sm90_resource_model():
    from flashcore_codegen.families import Sm90Config

    c = Sm90Config("bf16", 128, False, block_m=128, block_n=128, stages=2, schedule=1, persistent=0)
    assert (c.consumer_warpgroups, c.threads) == (2, 384)
    assert c.accumulator_registers() == 64 + 64 + 32 and c.register_budget() == 240 - 32
    # Overlapped D128: each V stage carries the PV GEMM's ones atom (traits.cuh kVPad).
    assert c.v_pad_columns() == 64 and replace(c, schedule=0).v_pad_columns() == 0
    assert c.smem_bytes() == 32768 + 2 * 65536 + 2 * 16384 + 1024 + 64 + 64
    assert c.is_valid
    # The sequential schedule packs P over S: O and S only. A D64 192x192 tile fits 3 WGs' 160
    # registers that way, and not with the overlap's S-and-P.
    seq = Sm90Config("bf16", 64, False, block_m=192, block_n=192, stages=2, schedule=0, persistent=1)
    assert seq.accumulator_registers() == 32 + 96 <= seq.register_budget() == 160 - 32 and seq.is_valid
    overlap = replace(seq, schedule=1)
    assert overlap.accumulator_registers() == 32 + 96 + 48 and not overlap.is_valid
    # Persistent: O gets a buffer of its own when it fits (traits.cuh kSeparateO), else it shares Q's.
    persistent = Sm90Config("bf16", 128, False, 128, 128, 2, 1, 1)
    assert persistent.smem_bytes() == 2 * 32768 + 2 * 65536 + 2 * 16384 + 64 + 64
    # The 64-row several-CTA tiles have no room for the ones atoms (the two-CTA one would lose its O
    # buffer); D256 (N would pass 256) takes none; D64's 192-row tile does.
    assert Sm90Config("bf16", 64, True, 64, 64, 3, 1, 1, ctas_per_sm=3).v_pad_columns() == 0
    assert Sm90Config("bf16", 64, False, 64, 128, 2, 1, 1, ctas_per_sm=2).v_pad_columns() == 0
    assert Sm90Config("bf16", 64, False, 192, 128, 2, 1, 1).v_pad_columns() == 64
    assert Sm90Config("bf16", 256, False, 128, 80, 2, 1, 1).v_pad_columns() == 0
    assert Sm90Config("bf16", 256, False, 128, 80, 2, 1, 1).smem_bytes() == 65536 + 2 * 81920 + 1024 + 64 + 64
    # FA3's D256 tile sits at the shared-memory limit; one more stage does not fit.
    assert Sm90Config("bf16", 256, False, 128, 80, 2, 1, 0).is_valid
    assert any("shared memory" in e for e in Sm90Config("bf16", 256, False, 128, 80, 3, 1, 0).validation_errors())
    # 3 consumer warpgroups run at 160 registers: D128 with 128 keys would spill.
    assert any("registers" in e for e in Sm90Config("bf16", 128, False, 192, 128, 2, 1, 0).validation_errors())
    assert "ping-pong (schedule=2) needs at least 2 consumer warpgroups (block_m >= 128)" in \
        Sm90Config("bf16", 64, False, 64, 128, 2, 2, 0).validation_errors()


def test_sm90_split_kv():
    from flashcore_codegen.families import Sm90Config

    split = Sm90Config("bf16", 64, False, 128, 128, 2, 1, 0, splits=4)
    assert split.is_valid and split.name.endswith("_p0_kv4") and split.template_params()["splits"] == 4
    # Its producer gets 40 registers (24 spilled), its two consumer warpgroups 232 each.
    assert split.register_budget() == 232 - 32
    # (No ones atoms under split-KV: the same smem as the sequential tile's, which takes none either.)
    assert split.v_pad_columns() == 0
    assert split.smem_bytes() == Sm90Config("bf16", 64, False, 128, 128, 2, 0, 0).smem_bytes() + 4 * 128
    assert "split-KV (splits > 1) runs one query tile per CTA: persistent must be 0" in \
        Sm90Config("bf16", 64, False, 128, 128, 2, 1, 1, splits=2).validation_errors()
    # The fp32 partial O (128 rows) is staged in the K ring: 2 stages of 64 keys are too small.
    assert any("K ring" in e for e in Sm90Config("bf16", 64, False, 128, 64, 2, 1, 0, splits=2).validation_errors())
    assert Sm90Config("bf16", 64, False, 128, 64, 2, 1, 0).name.endswith("_p0_kv1")  # the axis' default


def test_sm90_template_params():
    from flashcore_codegen.families import Sm90Config

    params = Sm90Config("fp16", 64, True, 192, 128, 2, 2, 1).template_params()
    assert (params["consumer_warpgroups"], params["overlap"], params["pingpong"], params["is_persistent"]) == \
        (3, "true", "true", "true")
    assert params["threads"] == 512 and "mma_atom" not in params


@pytest.mark.parametrize("head_dim,head_dim_v,expected", [
    (64, None, 64), (72, None, 128), (192, 128, 192), (160, None, 192), (200, None, 256), (64, 128, 128),
    (128, 64, 128), (8, 256, 256), (64, 100, None), (100, 64, None), (264, 64, None), (64, 0, None),
])
def test_kernel_head_dim(head_dim, head_dim_v, expected):
    assert kernel_head_dim(head_dim, head_dim_v) == expected


def test_kernel_head_dim_of_a_family():
    """A family pads to its own head dims: sm90 has 192, the others go from 128 to 256."""
    from flashcore_codegen.families import ScalarConfig, Sm90Config

    assert kernel_head_dim(160, None, Sm90Config.HEAD_DIMS) == 192
    assert kernel_head_dim(192, 128, Sm90Config.HEAD_DIMS) == 192
    assert kernel_head_dim(160, None, ScalarConfig.HEAD_DIMS) == 256
    sm90_192 = Sm90Config("bf16", 192, False, 128, 80, 2, 1, 1)
    sm90_256 = Sm90Config("bf16", 256, False, 128, 80, 2, 1, 1)
    scalar_256 = ScalarConfig("bf16", 256, False, block_m=16, warps=4)
    assert sm90_192.computes_head_dim(160) and not sm90_256.computes_head_dim(160)
    assert scalar_256.computes_head_dim(160) and scalar_256.computes_head_dim(192, 128)
    assert sm90_192.is_valid and not ScalarConfig("bf16", 192, False, block_m=16, warps=4).is_valid


def test_computes_head_dim_with_a_value_head_dim_of_its_own():
    """A family that pads runs Q/K and V head dims of their own on the variant of the larger;
    one that does not runs only its own head dim for both."""
    scalar = ScalarConfig(dtype="bf16", head_dim=128, causal=False, block_m=32, warps=4)
    mma = MmaConfig(dtype="bf16", head_dim=128, causal=False, block_m=128, block_n=64, warps=4)
    assert scalar.computes_head_dim(64, 128) and scalar.computes_head_dim(128, 96)
    assert scalar.computes_head_dim(128, 128) and not scalar.computes_head_dim(192, 128)
    assert mma.computes_head_dim(128, 128) and mma.computes_head_dim(128)
    assert not mma.computes_head_dim(128, 64) and not mma.computes_head_dim(64, 128)


def test_axis_that_leaves_its_default_out_of_the_name():
    """sm90's ctas_per_sm came after the shipped table: at 1 the names stay as they were, at 2 they
    end in _c2, and spelling the default (_c1) is not canonical."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=64, causal=True, block_m=64, block_n=128, stages=2, schedule=1, persistent=1,
                splits=1)
    one, two = Sm90Config(**base), Sm90Config(**base, ctas_per_sm=2)
    assert one.name == "fc_sm90_bf16_d64_causal_m64_n128_s2_sch1_p1_kv1"
    assert two.name == one.name + "_c2"
    assert config_from_name(one.name) == one and config_from_name(two.name) == two
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(one.name + "_c1")
    with pytest.raises(ValueError, match="malformed tile token 'c2'"):
        config_from_name(one.name + "_c2_c2")


def test_split_kv_through_global_memory():
    """combine=1 came after ctas_per_sm: its names end in _g1 (spelled without _c1), it needs a
    split, and only it goes past the portable cluster size of 8."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=128, causal=False, block_m=64, block_n=128, stages=2, schedule=1,
                persistent=0)
    cluster, global_ = Sm90Config(**base, splits=8), Sm90Config(**base, splits=8, combine=1)
    assert global_.name == cluster.name + "_g1" == "fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8_g1"
    assert config_from_name(global_.name) == global_ and config_from_name(cluster.name) == cluster
    assert global_.template_params()["split_global"] == "true" and cluster.template_params()["split_global"] == "false"
    sixteen = Sm90Config(**base, splits=16, combine=1)
    assert sixteen.is_valid and config_from_name(sixteen.name) == sixteen
    assert Sm90Config(**base, splits=16).validation_errors() == [
        "splits=16 > 8, the portable cluster size: combine through global memory (combine=1)"]
    assert Sm90Config(**base, splits=1, combine=1).validation_errors() == [
        "combine=1 (through global memory) is a split-KV combine: it needs splits > 1"]
    # Both optional axes spelled, in field order; out of order or spelled twice is refused.
    both = "fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p0_kv2_c2_g1"
    assert config_from_name(both).ctas_per_sm == 2 and config_from_name(both).combine == 1
    for bad in ("fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p0_kv2_g1_c2", "fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p0_kv2_g1_g1"):
        with pytest.raises(ValueError, match="malformed tile token"):
            config_from_name(bad)
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(cluster.name + "_g0")


def test_gqa_packing_axis():
    """pack_gqa=1 came after combine: its names end in _pq1 (after _g1 where both are set), it needs
    one 64-row query tile per CTA, and the template passes it on."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=128, causal=True, block_m=64, block_n=128, stages=2, schedule=1, persistent=0)
    plain, packing = Sm90Config(**base, splits=8, combine=1), Sm90Config(**base, splits=8, combine=1, pack_gqa=1)
    assert packing.name == plain.name + "_pq1" == "fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv8_g1_pq1"
    assert config_from_name(packing.name) == packing and config_from_name(plain.name) == plain
    assert packing.template_params()["pack_gqa"] == "true" and plain.template_params()["pack_gqa"] == "false"
    assert config_from_name("fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv2_pq1").splits == 2
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(plain.name + "_pq0")
    with pytest.raises(ValueError, match="malformed tile token"):
        config_from_name("fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv8_pq1_g1")
    for bad in (dict(block_m=128), dict(persistent=1, splits=1), dict(ctas_per_sm=2, persistent=1, splits=1)):
        errors = Sm90Config(**(base | dict(splits=2, pack_gqa=1) | bad)).validation_errors()
        assert any("GQA packing" in e for e in errors), (bad, errors)
    # Its scratch counts a K/V head's tiles of 64 / Gp queries: (1, 32 heads on 8, 4 queries) = 8 tiles.
    one_tile_each = Sm90Config(**base, splits=8, combine=1, pack_gqa=1).workspace_bytes(1, 32, 4, group=4)
    assert one_tile_each == 256 + 8 * 8 * 64 * 4 + 8 * 8 * 64 * 128 * 4
    assert plain.workspace_bytes(1, 32, 4) == 256 + 32 * 8 * 64 * 4 + 32 * 8 * 64 * 128 * 4


def test_stream_k_axis():
    """stream_k=1 came after lazy_rescale: its names end in _sk1, it takes persistent non-causal tiles
    only, the template passes it on, and its scratch mirrors FwdKernel::workspace_bytes: a counter for
    uneven tiles, the pieces' partials where whole tiles fill the SMs' rounds unevenly over at least
    8192 keys, else none."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=128, causal=False, block_m=128, block_n=128, stages=2, schedule=1, persistent=1,
                lazy_rescale=1)
    plain, stream = Sm90Config(**base), Sm90Config(**base, stream_k=1)
    assert stream.name == plain.name + "_sk1" == "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1_lr1_sk1"
    assert config_from_name(stream.name) == stream and not stream.validation_errors()
    assert stream.template_params()["stream_k"] == 1 and plain.template_params()["stream_k"] == 0
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(plain.name + "_sk0")
    for bad in (dict(causal=True), dict(persistent=0), dict(persistent=0, splits=2, combine=1),
                dict(block_m=64, ctas_per_sm=2)):
        errors = Sm90Config(**(base | dict(stream_k=1) | bad)).validation_errors()
        assert any("stream_k=1" in e for e in errors), (bad, errors)
    # (1, 16, 16384) on 132 SMs: 2048 whole tiles, 15.5 rounds: counters, then 131 boundaries x 2 pieces of
    # 128 rows (LSE, then O of 128 columns), each part padded to 256 bytes.
    assert stream.workspace_bytes(1, 16, 16384, seqlen_k=16384, sm_count=132) == \
        768 + 131 * 2 * 128 * 4 + 131 * 2 * 128 * 128 * 4
    assert stream.workspace_bytes(1, 16, 16384 - 64, seqlen_k=16384, sm_count=132) == 4  # a short last tile
    assert stream.workspace_bytes(1, 132, 128, seqlen_k=4096, sm_count=132) == 0  # whole rounds
    assert stream.workspace_bytes(1, 100, 128, seqlen_k=4096, sm_count=132) == 0  # fewer tiles than SMs
    assert stream.workspace_bytes(1, 16, 16384, seqlen_k=8191, sm_count=132) == 0  # too few keys to pay
    assert stream.workspace_bytes(1, 16, 16384, seqlen_k=8192, sm_count=132) > 4
    assert stream.workspace_bytes(1, 16, 16384) == 0  # SM count unknown: the static schedule
    assert plain.workspace_bytes(1, 16, 16384, seqlen_k=16384, sm_count=132) == 0


def test_wg_keys_axis():
    """wg_keys=1 came after stream_k: its names end in _wk1 (stream_k at its default left out), and it
    takes causal tiles of several row warpgroups whose key tiles are narrower than the query tile."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=256, causal=True, block_m=128, block_n=64, stages=2, schedule=1, persistent=1,
                lazy_rescale=1)
    plain, own = Sm90Config(**base), Sm90Config(**base, wg_keys=1)
    assert own.name == plain.name + "_wk1" == "fc_sm90_bf16_d256_causal_m128_n64_s2_sch1_p1_kv1_lr1_wk1"
    assert config_from_name(own.name) == own and not own.validation_errors()
    assert own.template_params()["trailing_args"] == ", true, false, true"
    assert plain.template_params()["trailing_args"] == ", true"
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(plain.name + "_wk0")
    for bad in (dict(causal=False), dict(block_m=64, block_n=64, schedule=1), dict(head_dim=128, block_n=128),
                dict(block_m=64, ctas_per_sm=2), dict(persistent=0, splits=2)):
        errors = Sm90Config(**(base | dict(wg_keys=1) | bad)).validation_errors()
        assert any("wg_keys=1" in e for e in errors), (bad, errors)
    # The 192-row tile over 128-key tiles qualifies (its WGs' rows end in different key tiles).
    assert not Sm90Config(**(base | dict(head_dim=64, block_m=192, block_n=128, wg_keys=1))).validation_errors()


def test_value_head_dim_axis():
    """head_dim_v (V's and O's head dim below Q/K's, e.g. DeepSeek's 192/128): spelled _v<N> only
    when set, smaller O accumulator and V ring in the resource model, computes exactly the calls
    whose Q/K pad to its head dim and whose V fits its own; not with split-KV or packing."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="bf16", head_dim=192, causal=True, block_m=128, block_n=128, stages=2, schedule=2, persistent=1)
    plain, own = Sm90Config(**base), Sm90Config(**base, head_dim_v=128)
    assert own.name == plain.name + "_v128" == "fc_sm90_bf16_d192_causal_m128_n128_s2_sch2_p1_kv1_v128"
    assert config_from_name(own.name) == own and not own.validation_errors()
    assert own.accumulator_registers() == plain.accumulator_registers() - 32  # O: 64 x 128 over 128 threads
    # Q 48 KB, K ring 96 KB, V ring 64 KB (192 KB with V at 192), O in the V ring, barriers.
    assert own.smem_bytes() == plain.smem_bytes() - 32 * 1024 == 48 * 1024 + 96 * 1024 + 64 * 1024 + 1024 + 64 + 64
    assert own.template_params()["head_dim_v"] == 128 and plain.template_params()["head_dim_v"] == 0
    assert own.computes_head_dim(192, 128) and own.computes_head_dim(160, 64) and own.computes_head_dim(192, 96)
    assert not own.computes_head_dim(192) and not own.computes_head_dim(192, 192) and not own.computes_head_dim(128, 64)
    assert plain.computes_head_dim(192, 128) and plain.computes_head_dim(192)  # by padding V to 192
    for bad in (dict(head_dim=128), dict(splits=2, persistent=0, block_m=64, schedule=1),
                dict(pack_gqa=1, block_m=64, persistent=0, schedule=1)):
        errors = Sm90Config(**(base | dict(head_dim_v=128) | bad)).validation_errors()
        assert any("head_dim_v=128" in e for e in errors), (bad, errors)


def assert_elided_axis(plain, on, suffix: str, default_suffix: str):
    """An axis whose default the name leaves out: ``on`` (the axis set) is ``plain``'s name plus
    ``suffix``, valid and parsed back; the default spelled out is no canonical name."""
    assert on.name == plain.name + suffix
    assert config_from_name(on.name) == on and not on.validation_errors()
    with pytest.raises(ValueError, match="not canonical"):
        config_from_name(plain.name + default_suffix)


def test_key_split_axis():
    """key_split_wgs (consumer warpgroups sharing one 64-row tile's key tiles): spelled _ks<N> only
    when above 1, more threads and a smaller register budget, one tile per CTA, a ring of stages
    that each warpgroup owns an equal share of, and its C++ parameters in the template."""
    from flashcore_codegen.families import Sm90Config

    base = dict(dtype="fp16", head_dim=64, causal=False, block_m=64, block_n=128, stages=4, schedule=1, persistent=0)
    plain, split = Sm90Config(**base), Sm90Config(**base, key_split_wgs=2)
    assert_elided_axis(plain, split, "_ks2", "_ks1")
    assert split.name == "fc_sm90_fp16_d64_full_m64_n128_s4_sch1_p0_kv1_ks2"
    assert (split.row_warpgroups, split.consumer_warpgroups, split.threads) == (1, 2, 384)
    assert split.register_budget() == 240 - 32 and split.smem_bytes() == plain.smem_bytes()
    four = Sm90Config(**(base | dict(block_n=64)), key_split_wgs=4)  # 112 registers: 64-key tiles
    assert (four.threads, four.register_budget()) == (640, 112 - 32) and not four.validation_errors()
    params = split.template_params()
    assert (params["row_warpgroups"], params["consumer_warpgroups"], params["key_split_wgs"]) == (1, 2, 2)
    assert plain.template_params()["key_split_wgs"] == 1
    # A shared slot would let a parity wait pass a phase early (key_split.cuh): stages % WGs == 0.
    assert any("not a multiple of key_split_wgs=2" in e
               for e in Sm90Config(**(base | dict(stages=3, key_split_wgs=2))).validation_errors())
    # Lazy rescaling too: the combine would not carry the lazy softmax's rounding sums (softmax.cuh).
    for bad in (dict(block_m=128, block_n=64), dict(persistent=1), dict(splits=2), dict(ctas_per_sm=2),
                dict(pack_gqa=1, causal=True, splits=2), dict(lazy_rescale=1)):
        errors = Sm90Config(**(base | dict(key_split_wgs=2) | bad)).validation_errors()
        assert any("key-split warpgroups share one 64-row query tile" in e for e in errors), (bad, errors)
    # The partials (fp32 O fragment, row max and sum of the other WGs) are staged in the K/V rings.
    assert any("do not fit the K/V rings" in e for e in Sm90Config(
        **(base | dict(block_n=48, key_split_wgs=4))).validation_errors())  # 54 KB of partials, 48 KB of rings


def test_lazy_rescale_axis():
    """lazy_rescale (O rescaled only when a row max grows past 2^8): spelled _lr1 only when on, no
    other resource; the defaults build the lazy twins of the 128/192-row tiles instead of the
    eager ones (the grid A/B of benchmarks/NOTES.md 2026-11-27 16:10-) and keep the eager 64-row ones."""
    from flashcore_codegen.families import Sm90Config
    from flashcore_codegen.space import default_configs

    base = dict(dtype="bf16", head_dim=128, causal=False, block_m=128, block_n=128, stages=2, schedule=2, persistent=1)
    eager, lazy = Sm90Config(**base), Sm90Config(**base, lazy_rescale=1)
    assert_elided_axis(eager, lazy, "_lr1", "_lr0")
    assert lazy.name == "fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1"
    assert (lazy.smem_bytes(), lazy.register_budget(), lazy.threads) == \
        (eager.smem_bytes(), eager.register_budget(), eager.threads)
    names = {c.name for c in default_configs() if c.family == "sm90"}
    assert lazy.name in names and eager.name not in names
    wide = {c for c in default_configs() if c.family == "sm90" and c.block_m >= 128 and c.head_dim != 192}
    assert wide and all(c.lazy_rescale for c in wide)
    assert "fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1" in names  # the seed's tile stays as measured
    # The D64 two-CTA tile: its lazy twin for non-causal problems, the eager tile for causal ones.
    two_ctas = {c.name for c in default_configs() if c.family == "sm90" and c.ctas_per_sm == 2 and c.head_dim == 64}
    assert two_ctas == {f"fc_sm90_{t}_d64_{m}_m64_n128_s2_sch1_p1_kv1_c2{lr}"
                        for t in ("fp16", "bf16") for m, lr in (("full", "_lr1"), ("causal", ""))}


def test_scoped_axis_enumerates_only_its_scope():
    """The space takes key_split_wgs > 1 only with the one-tile 64-row CTA (AXIS_SCOPES), where all
    of its valid configs lie, and keeps the order of the axes' values (default_configs relies on it)."""
    from flashcore_codegen.families import Sm90Config

    space = list(Sm90Config.space())
    split = [c for c in space if c.key_split_wgs > 1]
    assert split and all((c.block_m, c.persistent, c.splits, c.ctas_per_sm, c.combine, c.pack_gqa, c.lazy_rescale) ==
                         (64, 0, 1, 1, 0, 0, 0) for c in split)
    assert len(space) == len({c.name for c in space})
    every = itertools.product(*(Sm90Config.AXES[f.name] for f in Sm90Config.tile_fields()))
    ks = [f.name for f in Sm90Config.tile_fields()].index("key_split_wgs")
    outside = [v for v in every if v[ks] > 1 and v[0] != 64]
    assert outside and all(not Sm90Config("fp16", 64, False, *v).is_valid for v in outside[::97])
    names = [f.name for f in Sm90Config.tile_fields()]
    block = [c for c in space if (c.dtype, c.head_dim, c.causal) == ("fp16", 64, False)]
    keys = [tuple(Sm90Config.AXES[n].index(getattr(c, n)) for n in names) for c in block]
    assert keys == sorted(keys)


def test_two_ctas_per_sm_validation():
    from flashcore_codegen.families import Sm90Config

    def errors(**kw):
        base = dict(dtype="bf16", head_dim=64, causal=False, block_m=64, block_n=128, stages=2, schedule=1,
                    persistent=1, splits=1, ctas_per_sm=2)
        return Sm90Config(**(base | kw)).validation_errors()

    assert errors() == []
    assert any("one consumer warpgroup" in e for e in errors(block_m=128))
    assert any("split-KV" in e for e in errors(persistent=0, splits=2))
    # D128 64x128: Q + two 2-slot K/V rings = 144 KB, over half the SM's 228 KB.
    assert any("2 CTAs on one SM" in e for e in errors(head_dim=128))
    assert Sm90Config(dtype="bf16", head_dim=64, causal=False, block_m=64, block_n=128, stages=2, schedule=1,
                      persistent=1, ctas_per_sm=2).smem_limit() == 228 * 1024 // 2 - 1024


def test_three_ctas_per_sm_validation():
    """Three CTAs share an SM: 80 registers a thread at launch (setmaxnreg 24 / 136 within each
    CTA's pool) and a third of the shared memory, so only narrow D64 key tiles fit."""
    from flashcore_codegen.families import Sm90Config

    def config(**kw):
        base = dict(dtype="bf16", head_dim=64, causal=True, block_m=64, block_n=64, stages=2, schedule=1,
                    persistent=1, ctas_per_sm=3, lazy_rescale=1)
        return Sm90Config(**(base | kw))

    assert config().validation_errors() == []
    assert config().name == "fc_sm90_bf16_d64_causal_m64_n64_s2_sch1_p1_kv1_c3_lr1"
    assert config().smem_limit() == 228 * 1024 // 3 - 1024
    assert config().register_budget() == 136 - 32
    # 64x128: S, P and O need 128 registers of the consumer's 136 (D128 64x64: 112).
    assert any("accumulator registers" in e for e in config(block_n=128).validation_errors())
    assert any("accumulator registers" in e for e in config(head_dim=128).validation_errors())
    # 64x96 with three slots: Q + two 3-slot K/V rings = 80 KB, over a third of the SM's 228 KB.
    assert any("3 CTAs on one SM" in e for e in config(block_n=96, stages=3).validation_errors())
    assert any("one consumer warpgroup" in e for e in config(block_m=128).validation_errors())
