"""The public API on the GPU: dispatch, drop-in SDPA, LSE, graphs, tuning."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
from gpu_support import check_against_reference, gpu_skip_reason

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
    assert "fc_" in err and ("tuned" in err or "heuristic" in err)


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
