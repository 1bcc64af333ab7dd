"""Every built variant against an fp32 reference on fresh random inputs (needs the H100)."""

from __future__ import annotations

import pytest
import torch

from flashcore_codegen import config_from_name
from gpu_support import built_variants, check_against_reference, default_scale, gpu_skip_reason

pytestmark = pytest.mark.gpu
SKIP = gpu_skip_reason()

# Sequence lengths from the issue: 1, 17, 127, 128, 1000, 4096, with Sq != Sk cases.
SEQ_PAIRS = [(1, 1), (1, 4096), (17, 17), (17, 1000), (127, 128), (128, 127), (128, 128),
             (1000, 1000), (1000, 17), (127, 4096), (4096, 4096), (4096, 1)]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def rt():
    if SKIP:
        pytest.skip(SKIP)
    from flashcore_cutlass.runtime import get_runtime

    return get_runtime()


def _variants():
    names = built_variants() if not SKIP else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=SKIP or "no variants built"))]


def _runner(rt, name, scale):
    return lambda q, k, v, out, lse: rt.run(name, q, k, v, scale, out, lse)


@pytest.mark.parametrize("variant", _variants())
def test_variant_matches_reference(rt, variant):
    cfg = config_from_name(variant)
    dtype = DTYPES[cfg.dtype]
    scale = default_scale(cfg.head_dim)
    for sq, sk in SEQ_PAIRS:
        if cfg.family == "scalar" and sq * sk > 1000 * 1000:
            continue  # the scalar rung is ~100x slower; its boundaries are covered by the rest
        q = torch.randn(2, 3, sq, cfg.head_dim, device="cuda", dtype=dtype)
        k = torch.randn(2, 3, sk, cfg.head_dim, device="cuda", dtype=dtype)
        v = torch.randn(2, 3, sk, cfg.head_dim, device="cuda", dtype=dtype)
        try:
            check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)
        except AssertionError as exc:
            raise AssertionError(f"{variant} at Sq={sq} Sk={sk}: {exc}") from None


@pytest.mark.parametrize("variant", _variants())
def test_variant_strided_fused_qkv(rt, variant):
    """Slices of a fused (B, S, 3, H, D) QKV tensor: head and row strides are not the dense ones."""
    cfg = config_from_name(variant)
    b, s, h, d = 2, 300, 4, cfg.head_dim
    qkv = torch.randn(b, s, 3, h, d, device="cuda", dtype=DTYPES[cfg.dtype])
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    assert not q.is_contiguous() and q.stride(-1) == 1
    scale = 0.3  # a non-default scale too
    check_against_reference(_runner(rt, variant, scale), q, k, v, cfg.causal, scale)
