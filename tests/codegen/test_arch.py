"""Compile targets: parsing, nvcc flags, which devices run them; and what each family declares."""

import pytest

from flashcore_codegen import FAMILIES, arch
from flashcore_codegen.config import ALIGNED16_REASON, KernelConfig, config_from_name
from flashcore_codegen.toolchain import COMMON_NVCC_FLAGS, nvcc_flags


def test_parse_and_gencode():
    assert arch.parse("sm_90a") == (9, 0, True)
    assert arch.parse("sm_80") == (8, 0, False)
    assert arch.parse("sm_100a") == (10, 0, True)
    assert arch.parse("sm_120") == (12, 0, False)
    for bad in ("sm90", "sm_9", "compute_90", "sm_90b", ""):
        with pytest.raises(ValueError, match="not an nvcc compile target"):
            arch.parse(bad)
    assert arch.gencode_flag("sm_90a") == "-gencode=arch=compute_90a,code=sm_90a"
    assert arch.gencode_flag("sm_80") == "-gencode=arch=compute_80,code=sm_80"


@pytest.mark.parametrize("target,min_cc,capability,runs", [
    ("sm_90a", 90, (9, 0), True),
    ("sm_90a", 80, (9, 0), True),  # SM80 code compiled for sm_90a: still only 9.0
    ("sm_90a", 90, (9, 1), False),  # arch-specific: exactly 9.0
    ("sm_90a", 80, (8, 6), False),
    ("sm_90a", 90, (10, 0), False),
    ("sm_80", 80, (8, 0), True),
    ("sm_80", 80, (8, 6), True),  # a plain target: same major, minor >= 0
    ("sm_80", 80, (8, 9), True),
    ("sm_86", 80, (8, 0), False),
    ("sm_80", 80, (9, 0), False),  # a cubin never runs on another major
    ("sm_80", 86, (8, 0), False),  # the code needs more than the device has
    ("sm_80", 86, (8, 6), True),
])
def test_runs_on(target, min_cc, capability, runs):
    assert arch.runs_on(target, min_cc, capability) is runs


def test_describe():
    assert arch.describe("sm_90a") == "sm_90a (compute capability 9.0 only: H100/H200)"
    assert arch.describe("sm_100a") == "sm_100a (compute capability 10.0 only)"
    assert arch.describe("sm_80") == "sm_80 (compute capability 8.0 to 8.9)"
    assert arch.capability_name((8, 6)) == "sm_86"


def test_every_family_declares_target_flags_and_headers():
    for name, cls in FAMILIES.items():
        assert cls.ARCH == "sm_90a", name  # the only GPU the project builds for today
        assert cls.NVCC_FLAGS[: len(COMMON_NVCC_FLAGS)] == COMMON_NVCC_FLAGS
        assert arch.gencode_flag(cls.ARCH) in cls.NVCC_FLAGS
        assert "flashcore/api.h" in cls.HEADERS
        assert arch.parse(cls.ARCH).major * 10 >= cls.MIN_CC // 10 * 10
    assert FAMILIES["sm90"].MIN_CC == 90
    assert FAMILIES["scalar"].MIN_CC == FAMILIES["mma"].MIN_CC == FAMILIES["pipelined"].MIN_CC == 80
    assert FAMILIES["scalar"].HEADERS == ("flashcore/api.h",)
    assert FAMILIES["sm90"].HEADERS == ("flashcore/api.h", "flashcore/sm90/**")
    assert "flashcore/sm80/**" in FAMILIES["mma"].HEADERS and "flashcore/sm80/**" in FAMILIES["pipelined"].HEADERS


def test_a_family_whose_flags_miss_its_target_is_refused():
    from dataclasses import dataclass
    from typing import ClassVar

    with pytest.raises(TypeError, match="compiles for sm_80 but its NVCC_FLAGS lack -gencode=arch=compute_80"):
        @dataclass(frozen=True)
        class Wrong(KernelConfig):  # noqa: F841
            family: ClassVar[str] = "wrong_flags"
            ARCH: ClassVar[str] = "sm_80"
    assert "wrong_flags" not in FAMILIES

    @dataclass(frozen=True)
    class Right(KernelConfig):
        family: ClassVar[str] = "right_flags"
        ARCH: ClassVar[str] = "sm_80"
        NVCC_FLAGS: ClassVar[tuple] = nvcc_flags("sm_80", "-DEXTRA=1")
    try:
        assert Right.NVCC_FLAGS[-2:] == ("-gencode=arch=compute_80,code=sm_80", "-DEXTRA=1")
    finally:
        del FAMILIES["right_flags"]


class _Problem:
    def __init__(self, aligned16):
        self.aligned16 = aligned16


@pytest.mark.parametrize("name,needs_alignment", [
    ("fc_scalar_fp16_d64_full_m16_w4", False),
    ("fc_mma_bf16_d128_causal_m64_n64_w4", True),
    ("fc_pipelined_bf16_d256_full_m64_n32_w4_s2_lean0", True),
    ("fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p0_kv1", True),
])
def test_can_implement_alignment(name, needs_alignment):
    config = config_from_name(name)
    assert config.can_implement(_Problem(True)) is None
    assert config.can_implement(_Problem(False)) == (ALIGNED16_REASON if needs_alignment else None)
    assert config.can_implement(object()) is None  # a problem that says nothing is aligned
