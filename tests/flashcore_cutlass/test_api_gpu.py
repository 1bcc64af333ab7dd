"""The public API on the GPU: dispatch, drop-in SDPA, LSE, graphs, tuning."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_cutlass.reference import reference_attention
from gpu_support import check_against_reference, gpu_skip_reason, sdpa_any_scale

pytestmark = pytest.mark.gpu
SKIP = gpu_skip_reason()


@pytest.fixture(scope="module")
def rt():
    if SKIP:
        pytest.skip(SKIP)
    from flashcore_cutlass.runtime import get_runtime

    return get_runtime()


def _qkv(b, h, sq, sk, d, dtype=torch.bfloat16):
    return (torch.randn(b, h, s, d, device="cuda", dtype=dtype) for s in (sq, sk, sk))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_attention_dispatch_matches_reference(rt, causal, d):
    q, k, v = _qkv(2, 4, 333, 517, d)

    def run(q, k, v, out, lse):
        o, l = fc.attention(q, k, v, causal=causal, return_lse=True)
        out.copy_(o)
        lse.copy_(l)

    check_against_reference(run, q, k, v, causal)


def test_sdpa_drop_in_matches_torch(rt):
    q, k, v = _qkv(1, 8, 512, 512, 64, torch.float16)
    ours = fc.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert (ours.float() - ref.float()).abs().max().item() < 1e-2


def test_print_dispatch(rt, monkeypatch, capsys):
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    rt.registry.invalidate()
    fc.api._dispatch_cache.clear()
    q, k, v = _qkv(1, 2, 77, 77, 128)
    fc.attention(q, k, v)
    err = capsys.readouterr().err
    assert "fc_" in err and ("(tuned)" in err or "(shipped)" in err or "(heuristic)" in err)


def test_cuda_graph_capture(rt):
    q, k, v = _qkv(1, 8, 512, 512, 64, torch.float16)
    expected = fc.attention(q, k, v)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fc.attention(q, k, v)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expected)


def test_requires_grad_is_refused(rt):
    q, k, v = _qkv(1, 2, 64, 64, 64)
    q.requires_grad_(True)
    with pytest.raises(NotImplementedError, match="forward pass only"):
        fc.attention(q, k, v)
    with torch.no_grad():
        assert fc.attention(q, k, v).shape == q.shape


def test_tune_records_and_dispatch_uses_it(rt, tmp_path):
    from flashcore_cutlass.problem import Problem
    from flashcore_cutlass.registry import Registry
    from flashcore_cutlass.table import TuningTable
    from flashcore_cutlass.tune import tune_problem

    table = TuningTable(tmp_path / "tuning.db")
    problem = Problem("bf16", 128, False, 2, 8, 1024, 1024)
    result = tune_problem(rt, table, problem, careful_ms=10, log=lambda m: None)
    assert result.winner is not None, [(c.variant, c.max_err) for c in result.candidates]
    rows = table.rows(problem_key=problem.key, env=rt.env, valid_hashes=rt.hashes)
    assert len(rows) == sum(c.ok for c in result.candidates) >= 1
    reg = Registry(rt.hashes, table, rt.env)
    choice = reg.choose(problem)
    assert choice.reason == "tuned" and choice.variant == result.winner.variant


# ---------------------------------------------------------------------------------------------
# Bad and edge input on the device.
# ---------------------------------------------------------------------------------------------

def _any_variant(rt, d=None):
    names = sorted(rt.ids)
    if d is not None:
        names = [n for n in names if f"_d{d}_" in n]
    if not names:
        pytest.skip("no built variant" + (f" with head_dim {d}" if d else ""))
    return names[0]


def _variant_qkv(name, b=1, h=2, sq=40, sk=70):
    from flashcore_codegen import config_from_name

    cfg = config_from_name(name)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[cfg.dtype]
    return cfg, _qkv(b, h, sq, sk, cfg.head_dim, dtype)


def test_arch_check_message(rt):
    """The op refuses any GPU but sm_90 before launching (checked once per device)."""
    arch_error = torch.ops.flashcore.arch_error
    assert arch_error(9, 0) == ""
    assert arch_error(8, 6) == "flashcore kernels are built for sm_90a (H100/H200); this GPU is sm_86"
    assert arch_error(10, 0).endswith("this GPU is sm_100")
    assert arch_error(9, 1) != ""


def test_negative_and_zero_scale_through_the_api(rt):
    q, k, v = _qkv(2, 4, 150, 260, 128)
    for causal in (False, True):
        for scale in (-0.3, 0.0):
            def run(q, k, v, out, lse, causal=causal, scale=scale):
                o, l = fc.attention(q, k, v, causal=causal, scale=scale, return_lse=True)
                out.copy_(o)
                lse.copy_(l)

            check_against_reference(run, q, k, v, causal, scale, baseline=sdpa_any_scale)


@pytest.mark.parametrize("shape", [(0, 2, 16, 16), (2, 0, 16, 16), (2, 2, 0, 16), (2, 2, 16, 0), (2, 2, 0, 0)],
                         ids=["B0", "H0", "Sq0", "Sk0", "Sq0Sk0"])
def test_empty_problems_like_sdpa(rt, shape):
    """Nothing is launched; shapes like SDPA; no keys: out = 0 (an empty sum, as SDPA's math
    definition gives on CPU), lse = -inf."""
    b, h, sq, sk = shape
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name, b, h, sq, sk)
    d = cfg.head_dim
    out, lse = fc.attention(q, k, v, return_lse=True)
    assert out.shape == (b, h, sq, d) and out.dtype == q.dtype and out.device == q.device
    assert lse.shape == (b, h, sq) and lse.dtype == torch.float32 and lse.device == q.device
    # The empty sum: zeros (SDPA's math backend gives the same for Sk = 0 with B, H >= 1; torch's CPU
    # SDPA itself dies with SIGFPE on B = 0 or H = 0 in torch 2.11, so it cannot be the reference here).
    expected = torch.zeros(b, h, sq, d)
    assert torch.equal(out.cpu().float(), expected)
    assert (lse == float("-inf")).all()  # vacuous for an empty lse
    # The op itself (preallocated NaN-poisoned results) agrees.
    o = torch.full((b, h, sq, d), float("nan"), device="cuda", dtype=q.dtype)
    l = torch.full((b, h, sq), float("nan"), device="cuda")
    rt.run(name, q, k, v, 0.125, o, l)
    torch.cuda.synchronize()
    assert torch.equal(o.cpu().float(), expected) and (l == float("-inf")).all()


def test_sequence_beyond_int_range_is_refused(rt):
    """Expanded (stride-0) keys: a 2^30 + 1 long sequence costs no memory; the op refuses it."""
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name)
    big_k = k[:, :, :1].expand(-1, -1, 2**30 + 1, -1)
    with pytest.raises(ValueError, match=r"seqlen_k = 1073741825: flashcore kernels index sequences with 32-bit"):
        rt.run(name, q, big_k, big_k, 0.1)
    with pytest.raises(ValueError, match=r"32-bit"):
        fc.attention(q, big_k, big_k, causal=cfg.causal)


def test_results_aliasing_inputs_are_refused(rt):
    """out= / lse= sharing memory with an input (or each other) is refused with a clear error
    (blocks write O while others still read Q/K/V): conservatively, any byte-range overlap."""
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name, sq=70, sk=70)
    for alias, what in ((q, "query"), (k, "key"), (v, "value")):
        with pytest.raises(ValueError, match=f"out overlaps {what} in memory; flashcore does not compute in place"):
            rt.run(name, q, k, v, 0.1, alias)
    # Interleaved views of one buffer: disjoint elements, overlapping byte ranges -> refused too.
    buf = torch.randn(1, 2, 70, 2 * cfg.head_dim, device="cuda").to(q.dtype)
    q2, o2 = buf[..., :cfg.head_dim], buf[..., cfg.head_dim:]
    with pytest.raises(ValueError, match="out overlaps query"):
        rt.run(name, q2, k, v, 0.1, o2)
    # An LSE living in q's memory.
    raw = torch.empty(q.numel() * q.element_size() + 4 * 2 * 70, dtype=torch.uint8, device="cuda")
    q3 = raw[: q.numel() * 2].view(q.dtype).view(q.shape).copy_(q)
    lse = raw[: 4 * 2 * 70].view(torch.float32).view(1, 2, 70)
    with pytest.raises(ValueError, match="lse overlaps query in memory"):
        rt.run(name, q3, k, v, 0.1, None, lse)
    # A stride-0 out would be written by many blocks at once.
    with pytest.raises(ValueError, match="out has elements that share memory"):
        rt.run(name, q, k, v, 0.1, torch.empty_like(q[:, :, :1]).expand_as(q))
    # Separate results work.
    o, l = rt.run(name, q, k, v, 0.1, torch.empty_like(q), torch.empty(1, 2, 70, device="cuda"))
    torch.cuda.synchronize()
    assert torch.isfinite(o).all() and torch.isfinite(l).all()


def test_cpu_tensor_mixed_in(rt):
    """The device check path (one GPU is enough): a CPU tensor among CUDA ones."""
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name)
    with pytest.raises(ValueError, match="query, key, value are on different devices: cuda:0, cpu, cuda:0"):
        fc.attention(q, k.cpu(), v, causal=cfg.causal)
    fc.attention(q, k, v, causal=cfg.causal)  # cache this shape: the next call skips the Python checks
    with pytest.raises(ValueError, match="value must be a CUDA tensor, got one on cpu"):
        fc.attention(q, k, v.cpu(), causal=cfg.causal)
    with pytest.raises(ValueError, match="key must be a CUDA tensor, got one on cpu"):
        rt.run(name, q, k.cpu(), v, 0.1)
    with pytest.raises(ValueError, match="out must be a CUDA tensor, got one on cpu"):
        rt.run(name, q, k, v, 0.1, torch.empty(q.shape, dtype=q.dtype))
    with pytest.raises(ValueError, match="lse must be a contiguous float32 CUDA tensor"):
        rt.run(name, q, k, v, 0.1, None, torch.empty(q.shape[:3]))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_two_gpus(rt):
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name)
    k1 = k.to("cuda:1")
    with pytest.raises(ValueError, match="query, key, value are on different devices: cuda:0, cuda:1, cuda:0"):
        fc.attention(q, k1, v, causal=cfg.causal)
    with pytest.raises(ValueError, match="key is on cuda:1 but query is on cuda:0: all tensors must be on one GPU"):
        rt.run(name, q, k1, v, 0.1)


def test_runs_on_the_current_stream(rt):
    """Launched under ``with torch.cuda.stream(s)``: queued on s behind a long op (so the default
    stream sees the poisoned output meanwhile), correct after s.synchronize() alone."""
    name = _any_variant(rt)
    cfg, (q, k, v) = _variant_qkv(name, b=2, h=3, sq=300, sk=300)
    scale = 0.1
    out = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:3], float("nan"), device="cuda")
    snapshot = torch.empty_like(out)  # allocated up front: no allocation between launch and copy
    fc.attention(q, k, v, causal=cfg.causal, scale=scale)  # dispatch decided (and cached) beforehand
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(2_000_000_000)  # ~1 s of spinning on `side` only
        rt.run(name, q, k, v, scale, out, lse)
        api_out = fc.attention(q, k, v, causal=cfg.causal, scale=scale)
    assert not side.query(), "the side stream finished early: the sleep is too short to tell streams apart"
    # The default stream does not wait for `side` (a non-blocking stream): had the kernel gone to
    # the default stream, this copy would see its output; queued behind the sleep, it sees poison.
    snapshot.copy_(out)
    torch.cuda.current_stream().synchronize()
    assert not side.query(), "the side stream finished before the snapshot: inconclusive"
    assert torch.isnan(snapshot).all(), "the kernel ran before the side stream's sleep ended: wrong stream"
    side.synchronize()  # no device-wide synchronisation
    ref_out, ref_lse = reference_attention(q, k, v, cfg.causal, scale=scale)
    torch.cuda.current_stream().synchronize()
    assert (out.float() - ref_out).abs().max().item() < 0.05
    assert (api_out.float() - ref_out).abs().max().item() < 0.05
    lse_rel = ((lse - ref_lse).abs() / ref_lse.abs().clamp_min(1.0)).max().item()
    assert lse_rel < 1e-3
