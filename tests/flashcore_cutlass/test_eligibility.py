"""Dispatch offers only variants the device runs and that can run the call (no GPU needed: the
device's capability and the problem's layout are given)."""

import pytest

from flashcore_codegen.config import config_from_name
from flashcore_cutlass.eligibility import Target, family_build_command, families_for, runs_on
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.registry import (
    MissingVariantError,
    NoRunnableVariantError,
    Registry,
    UnsupportedInputError,
)

SCALAR = "fc_scalar_fp16_d64_full_m16_w4"
MMA = "fc_mma_fp16_d64_full_m64_n64_w4"
PIPELINED = "fc_pipelined_fp16_d64_full_m128_n64_w4_s2_lean0"
SM90 = "fc_sm90_fp16_d64_full_m128_n128_s2_sch1_p0_kv1"
H100 = (9, 0)


def problem(aligned16=True, **kw):
    return Problem(**({"dtype": "fp16", "head_dim": 64, "causal": False} | kw), batch=2, heads=8,
                   seqlen_q=1024, seqlen_k=1024, aligned16=aligned16)


def registry(*names, capability=H100, targets=None):
    return Registry({n: f"hash-{n}" for n in names}, capability=capability, targets=targets)


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.delenv("FLASHCORE_PRINT_DISPATCH", raising=False)


# -- the device ------------------------------------------------------------------------------

def test_targets_default_to_the_family_and_follow_the_extension():
    reg = registry(SCALAR, SM90)
    assert reg.targets == {SCALAR: Target("sm_90a", 80), SM90: Target("sm_90a", 90)}
    reg = registry(SCALAR, targets={SCALAR: ("sm_80", 80)})
    assert reg.targets[SCALAR] == Target("sm_80", 80)


def test_only_variants_the_device_runs_are_candidates():
    targets = {SCALAR: ("sm_80", 80)}  # as if the scalar family were compiled for sm_80
    assert registry(SCALAR, SM90, capability=(8, 6), targets=targets).candidates(problem()) == [SCALAR]
    assert registry(SCALAR, SM90, capability=H100, targets=targets).candidates(problem()) == [SM90]
    assert registry(SCALAR, SM90, capability=None, targets=targets).candidates(problem()) == [SM90, SCALAR]
    assert runs_on(Target("sm_90a", 80), None)


def test_no_variant_for_this_device_names_archs_device_and_fix():
    reg = registry(SCALAR, SM90, capability=(8, 6))
    with pytest.raises(NoRunnableVariantError) as info:
        reg.choose(problem())
    message = str(info.value)
    assert message.startswith(
        "the built flashcore variants that compute fp16 B2 H8 Sq1024 Sk1024 D64 full are for sm_90a"
        " (compute capability 9.0 only: H100/H200), this GPU is sm_86: run on a GPU they were built for"
        " (select it with CUDA_VISIBLE_DEVICES or torch.cuda.set_device)"
    )
    assert message.endswith("; no kernel family compiles for sm_86 yet (every family targets sm_90a)")
    assert isinstance(info.value, MissingVariantError)  # callers catching the old error still do


def test_no_variant_for_this_device_suggests_a_build_when_a_family_targets_it(monkeypatch):
    scalar = type(config_from_name(SCALAR))
    monkeypatch.setattr(scalar, "ARCH", "sm_80")
    reg = registry(SM90, capability=(8, 6))
    with pytest.raises(NoRunnableVariantError, match=r"or build variants for this GPU on it: flashcore build"
                       r" --family scalar --dtype fp16 --head-dim 64 --no-causal$"):
        reg.choose(problem())


# -- the call --------------------------------------------------------------------------------

def test_misaligned_problems_go_to_a_family_that_takes_them():
    reg = registry(SCALAR, MMA, PIPELINED, SM90)
    assert reg.choose(problem()).variant == SM90
    assert reg.candidates(problem(aligned16=False)) == [SCALAR]
    assert reg.choose(problem(aligned16=False)).variant == SCALAR
    # Decisions are kept per (key, alignment): the aligned one is still the sm90 variant.
    assert problem().key == problem(aligned16=False).key
    assert reg.choose(problem()).variant == SM90


def test_no_variant_takes_misaligned_inputs_names_reasons_and_fix():
    reg = registry(MMA, PIPELINED, SM90)
    with pytest.raises(UnsupportedInputError) as info:
        reg.choose(problem(aligned16=False))
    assert isinstance(info.value, ValueError)  # an input problem, like other layout errors
    assert str(info.value) == (
        "no built flashcore variant can run fp16 B2 H8 Sq1024 Sk1024 D64 full unaligned: mma, pipelined, sm90:"
        " needs 16-byte aligned q/k/v with strides that are multiples of 16 bytes. Pass tensors that meet this"
        " (e.g. x.contiguous()), or build a family that takes these inputs:"
        " flashcore build --family scalar --dtype fp16 --head-dim 64 --no-causal"
    )


def test_the_build_command_adds_all_when_the_default_set_lacks_the_problem():
    # The scalar family's default set covers only the ladder problems (fp16 d64, bf16 d128 non-causal).
    assert family_build_command(problem(), ["scalar"]) == (
        "flashcore build --family scalar --dtype fp16 --head-dim 64 --no-causal")
    assert family_build_command(problem(causal=True, dtype="bf16"), ["scalar"]) == (
        "flashcore build --all --family scalar --dtype bf16 --head-dim 64 --causal")
    assert families_for(problem(aligned16=False), H100) == ["scalar"]
    assert families_for(problem(), (8, 0)) == []


def test_missing_variant_error_is_unchanged_when_nothing_computes_the_problem():
    with pytest.raises(MissingVariantError, match="build one with: flashcore build --dtype bf16 --head-dim 64"):
        registry(SCALAR).choose(problem(dtype="bf16"))


def test_packing_variants_compute_exactly_the_packed_problems():
    from flashcore_cutlass.eligibility import computes
    from flashcore_cutlass.problem import Problem

    packing = config_from_name("fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv2_pq1")
    plain = config_from_name("fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv2")
    packed = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True, group=4)
    unpacked = Problem("bf16", 128, True, 1, 32, 4, 8192, bottom_right=True)
    assert computes(packing, packed) and computes(packing, packed.key)
    assert not computes(packing, unpacked) and not computes(plain, packed)
    assert computes(plain, unpacked)
