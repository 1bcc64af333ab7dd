"""Shared by the GPU tests: why a test cannot run here, and the variants that were built."""

from __future__ import annotations

import math

import torch

from flashcore_cutlass.build import EXTENSION_NAME, default_build_dir, read_manifest
from flashcore_cutlass.reference import reference_attention, sample_rows


def gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False): GPU tests run on the H100 (benchmarks/device_run.sh)"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) != (9, 0):
        return f"needs an sm_90 GPU (H100/H200), found sm_{major}{minor}"
    if not (default_build_dir() / EXTENSION_NAME).exists():
        return f"no built extension in {default_build_dir()}: run `flashcore build` first"
    return None


def built_variants() -> list[str]:
    return sorted(read_manifest()["variants"])


def check_against_reference(run, q, k, v, causal: bool, scale: float | None = None):
    """Run ``run(q, k, v, out, lse)`` on NaN-poisoned outputs and check it against the fp32
    reference: max|out-ref| <= 2*max|sdpa-ref| + 1e-3, LSE within 1e-3 relative, no NaN."""
    b, h, sq, d = q.shape
    out = torch.full((b, h, sq, d), float("nan"), device=q.device, dtype=q.dtype)
    lse = torch.full((b, h, sq), float("nan"), device=q.device, dtype=torch.float32)
    run(q, k, v, out, lse)
    torch.cuda.synchronize()
    assert not torch.isnan(out).any(), "output has NaN (unwritten or invalid)"
    assert not torch.isnan(lse).any(), "lse has NaN (unwritten or invalid)"
    rows = sample_rows(sq, count=512, device=q.device)
    ref_out, ref_lse = reference_attention(q, k, v, causal, scale=scale, rows=rows)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    sdpa_err = (sdpa[:, :, rows].float() - ref_out).abs().max().item()
    assert sdpa_err < 0.05, f"SDPA itself is off by {sdpa_err}: the tolerance would be meaningless"
    err = (out[:, :, rows].float() - ref_out).abs().max().item()
    tol = 2 * sdpa_err + 1e-3
    assert err <= tol, f"max|out-ref| = {err:.3g} > {tol:.3g} (2*SDPA's {sdpa_err:.3g} + 1e-3)"
    lse_rel = ((lse[:, :, rows] - ref_lse).abs() / ref_lse.abs().clamp_min(1.0)).max().item()
    assert lse_rel <= 1e-3, f"lse relative error {lse_rel:.3g} > 1e-3"
    return err, sdpa_err, lse_rel


def default_scale(d: int) -> float:
    return 1.0 / math.sqrt(d)
