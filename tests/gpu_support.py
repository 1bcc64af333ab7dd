"""Shared by the GPU tests: why a test cannot run here, and the variants that were built."""

from __future__ import annotations

import math

import torch

from flashcore_cutlass.build import EXTENSION_NAME, default_build_dir, read_manifest
from flashcore_cutlass.reference import reference_attention, sample_rows

SDPA_MAX_BATCH = 32768  # torch's kernels put batch/heads on grid.y/z (at most 65535): chunk above


def gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False): GPU tests run on a Hopper GPU, H100 or H200 (benchmarks/device_run.sh)"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) != (9, 0):
        return f"needs an sm_90 GPU (H100/H200), found sm_{major}{minor}"
    if not (default_build_dir() / EXTENSION_NAME).exists():
        return f"no built extension in {default_build_dir()}: run `flashcore build` first"
    return None


def built_variants() -> list[str]:
    return sorted(read_manifest()["variants"])


def representative_variants(per_mask: bool = True, prefer_dtype: str | None = None) -> list[str]:
    """One built variant per family (and per mask with ``per_mask``; and per kernel design where a
    family has several: sm90 split-KV, key-split warpgroups and plain CTAs, and its consumer warpgroup
    counts, whose register budgets give different softmax code: causal tiles of 160 registers select
    masked elements out, softmax.cuh): the smallest head_dim, then
    ``prefer_dtype``, then the plainest tiles (lean 0), then the name. Families come from the
    variant names, so a new family is included as soon as it is built. Variants whose V has a head
    dim of its own (head_dim_v) are left out: these tests give V Q's head dim (the per-variant tests
    cover them)."""
    from flashcore_codegen import config_from_name

    best: dict[tuple, tuple] = {}
    for name in built_variants():
        try:
            cfg = config_from_name(name)
        except ValueError:  # built by a newer/older checkout: not ours to test
            continue
        if cfg.v_head_dim != cfg.head_dim:
            continue
        design = (getattr(cfg, "splits", 1) > 1, getattr(cfg, "key_split_wgs", 1) > 1,
                  getattr(cfg, "consumer_warpgroups", 1))
        group = (cfg.family, design, cfg.causal) if per_mask else (cfg.family, design)
        rank = (cfg.head_dim, cfg.dtype != prefer_dtype, getattr(cfg, "lean", 0), name)
        if group not in best or rank < best[group]:
            best[group] = rank
    return sorted(rank[-1] for rank in best.values())


def axis_params(axis: str, what: str) -> list:
    """Every built variant whose config has ``axis`` set (e.g. ``persistent``, ``pack_gqa``,
    ``stream_k``) as pytest parameters, or one skipped parameter saying why none ("no <what>
    variant built")."""
    return config_params(lambda cfg: getattr(cfg, axis, 0), what)


def config_params(keep, what: str) -> list:
    """Every built variant whose config ``keep(config)`` accepts, in axis_params's form."""
    import pytest
    from flashcore_codegen import config_from_name

    reason = gpu_skip_reason()
    names = [n for n in (built_variants() if not reason else []) if keep(config_from_name(n))]
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=reason or f"no {what} variant built"))]


def persistent_params() -> list:
    """Every built variant with a persistent grid (CTAs walk tiles in turn): axis_params."""
    return axis_params("persistent", "persistent")


def idle_warpgroup_params() -> list:
    """Every built persistent variant whose query tile spans several row warpgroups (those past a
    sequence's end idle while the others compute): config_params."""
    return config_params(lambda cfg: getattr(cfg, "persistent", 0) and cfg.row_warpgroups > 1
                         and cfg.key_split_wgs == 1, "multi-warpgroup persistent")


def pack_gqa_params() -> list:
    """Every built variant that packs a GQA group's query heads into rows: axis_params."""
    return axis_params("pack_gqa", "GQA-packing")


def representative_params(per_mask: bool = True, prefer_dtype: str | None = None) -> list:
    """representative_variants() as pytest parameters, or one skipped parameter saying why none."""
    import pytest

    reason = gpu_skip_reason()
    names = representative_variants(per_mask, prefer_dtype) if not reason else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=reason or "no variants built"))]


def sdpa(q, k, v, causal: bool, scale: float | None = None) -> torch.Tensor:
    """torch SDPA, in chunks of batch*heads that its kernels can launch (any B, H)."""
    b, h, sq, _ = q.shape
    if b * h <= SDPA_MAX_BATCH:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    qf, kf, vf = (t.reshape(b * h, 1, t.shape[2], t.shape[3]) for t in (q, k, v))
    out = torch.cat([
        torch.nn.functional.scaled_dot_product_attention(
            qf[i:i + SDPA_MAX_BATCH], kf[i:i + SDPA_MAX_BATCH], vf[i:i + SDPA_MAX_BATCH], is_causal=causal, scale=scale)
        for i in range(0, b * h, SDPA_MAX_BATCH)
    ])
    return out.reshape(b, h, sq, v.shape[3])


def sdpa_any_scale(q, k, v, causal: bool, scale: float) -> torch.Tensor:
    """SDPA's result for any finite scale, through an equivalent problem with a positive normal
    scale (torch's fused kernels take the row max of raw scores, so they fail for scale <= 0):
    softmax(scale * q.k) = softmax(|scale| * (-q).k), and a scale of magnitude below 1e-30
    weighs every visible key 1 in fp32, like 1e-30 itself does."""
    q_eq = -q if scale < 0 else q
    return sdpa(q_eq, k, v, causal, scale=max(abs(scale), 1e-30))


def finish_or_stop(seconds: float = 60.0) -> None:
    """torch.cuda.synchronize(), but a GPU that does not finish within ``seconds`` (a hung kernel:
    some barrier never completes) stops the whole pytest session with one message naming the test,
    instead of blocking every later test until the job's time limit (the context is lost anyway)."""
    import os
    import time

    import pytest

    done = torch.cuda.Event()
    done.record()
    start = time.perf_counter()
    while not done.query():
        if time.perf_counter() - start > seconds:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            pytest.exit(f"the GPU did not finish in {seconds:.0f} s (a hung kernel) in {test}", returncode=3)
        time.sleep(0.0005)


def check_against_reference(run, q, k, v, causal: bool, scale: float | None = None, baseline=None):
    """Run ``run(q, k, v, out, lse)`` on NaN-poisoned outputs and check it against the fp32
    reference: max|out-ref| <= 2*max|sdpa-ref| + 1e-3, LSE within 1e-3 relative, no NaN.
    ``baseline(q, k, v, causal, scale)`` computes the "SDPA" output that sets the tolerance
    (default: torch SDPA, chunked for any batch*heads)."""
    b, h, sq, _ = q.shape
    out = torch.full((b, h, sq, v.shape[3]), float("nan"), device=q.device, dtype=q.dtype)  # V's head dim
    lse = torch.full((b, h, sq), float("nan"), device=q.device, dtype=torch.float32)
    run(q, k, v, out, lse)
    finish_or_stop()
    assert not torch.isnan(out).any(), "output has NaN (unwritten or invalid)"
    assert not torch.isnan(lse).any(), "lse has NaN (unwritten or invalid)"
    rows = sample_rows(sq, count=512, device=q.device)
    ref_out, ref_lse = reference_attention(q, k, v, causal, scale=scale, rows=rows)
    base = (baseline or sdpa)(q, k, v, causal, scale)
    sdpa_err = (base[:, :, rows].float() - ref_out).abs().max().item()
    assert sdpa_err < 0.05, f"SDPA itself is off by {sdpa_err}: the tolerance would be meaningless"
    err = (out[:, :, rows].float() - ref_out).abs().max().item()
    tol = 2 * sdpa_err + 1e-3
    assert err <= tol, f"max|out-ref| = {err:.3g} > {tol:.3g} (2*SDPA's {sdpa_err:.3g} + 1e-3)"
    lse_rel = ((lse[:, :, rows] - ref_lse).abs() / ref_lse.abs().clamp_min(1.0)).max().item()
    assert lse_rel <= 1e-3, f"lse relative error {lse_rel:.3g} > 1e-3"
    return err, sdpa_err, lse_rel


def check_nan_pattern(out, lse, ref_out, ref_lse, must_be_nan=None, may_be_nan=None, tol: float = 0.05):
    """Bad-input propagation against the fp32 reference (all rows). By default our output is NaN
    exactly where the reference's is. ``must_be_nan`` / ``may_be_nan`` (bool masks) loosen that
    to "at least / at most there" where the reference's pattern is an artifact (its matmul
    multiplies the 0 weight of a masked key by a NaN value). Never inf where the reference is
    finite; finite values within ``tol``; LSE compared on the rows where the reference's is
    finite (the LSE of a NaN row is +inf by the kernels' convention, NaN in the reference)."""
    ours = torch.isnan(out)
    ref = torch.isnan(ref_out)
    must = ref if must_be_nan is None else must_be_nan
    may = ref if may_be_nan is None else may_be_nan
    where = lambda m: m.nonzero()[:8].tolist()  # noqa: E731
    assert must.any(), "the test's bad input reaches no output: a broken test"
    assert not (must & ~ours).any(), f"should be NaN (a bad input that row sees) at {where(must & ~ours)}"
    assert not (ours & ~may).any(), f"NaN where the reference has none at {where(ours & ~may)}"
    assert not (torch.isinf(out) & ~torch.isinf(ref_out)).any(), "inf where the reference is finite"
    both = ~ours & ~may & torch.isfinite(ref_out)
    err = (out.float() - ref_out).abs()[both].max().item() if both.any() else 0.0
    assert err <= tol, f"finite entries off by {err:.3g} > {tol}"
    finite = torch.isfinite(ref_lse)
    if finite.any():
        assert torch.isfinite(lse[finite]).all(), "LSE not finite where the reference's is"
        lse_rel = ((lse[finite] - ref_lse[finite]).abs() / ref_lse[finite].abs().clamp_min(1.0)).max().item()
        assert lse_rel <= 1e-3, f"lse relative error {lse_rel:.3g} > 1e-3"


def default_scale(d: int) -> float:
    return 1.0 / math.sqrt(d)
