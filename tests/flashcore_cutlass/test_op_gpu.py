"""flashcore::attention with the real kernels: opcheck on CUDA tensors, torch.compile (fullgraph,
with and without dynamic shapes, no compile per sequence length), CUDA graphs."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
import flashcore_cutlass.op  # noqa: F401  registers torch.ops.flashcore.* (the package imports lazily)
from flashcore_cutlass.reference import random_qkv

pytestmark = pytest.mark.gpu


def _qkv(b, h, hkv, sq, sk, d=64, dtype=torch.bfloat16, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return random_qkv(b, h, sq, sk, d, dtype, generator=gen, heads_k=hkv)


OPCHECK_CASES = {
    "mha_full": ((2, 4, 4, 100, 100, 64), "none", None),
    "gqa_top_left": ((1, 8, 2, 77, 130, 128), "top_left", 0.1),
    "mqa_bottom_right_rows_without_keys": ((2, 4, 1, 90, 33, 64), "bottom_right", None),
    "gqa_decode": ((3, 8, 2, 1, 257, 128), "bottom_right", -0.2),
    "no_keys": ((1, 2, 2, 5, 0, 64), "bottom_right", None),
}


@pytest.mark.parametrize("case", sorted(OPCHECK_CASES))
def test_opcheck_on_cuda(rt, case):
    """Schema, autograd registration, fake tensors against the real kernels' results (shapes,
    strides, dtypes, devices), AOTAutograd with dynamic shapes (compared to eager results)."""
    shape, causal, scale = OPCHECK_CASES[case]
    q, k, v = _qkv(*shape)
    torch.library.opcheck(torch.ops.flashcore.attention.default, (q, k, v, causal, scale))


def _op_graphs(counter) -> int:
    target = torch.ops.flashcore.attention.default
    return sum(any(n.target is target for n in g.graph.nodes) for g in counter.graphs)


LENGTHS = [(100, 300), (163, 410), (250, 250)]


@pytest.mark.parametrize("dynamic,compiles", [(True, 1), (None, 2)], ids=["dynamic", "automatic_dynamic"])
@pytest.mark.parametrize("causal", [False, "bottom_right"])
def test_compile_fullgraph_matches_eager_without_a_compile_per_length(rt, causal, dynamic, compiles):
    """Inductor, fullgraph (a graph break raises): three sequence lengths compile once with
    dynamic=True, twice by default (static, then one dynamic graph), never per length; the
    compiled results are the eager ones bit for bit (same dispatch, same kernel)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    def fn(q, k, v):
        out, lse = fc.attention(q, k, v, causal=causal, return_lse=True)
        return out * 2, lse  # an inductor kernel around the op

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(fn, backend=counter, fullgraph=True, dynamic=dynamic)
    for i, (sq, sk) in enumerate(LENGTHS):
        q, k, v = _qkv(2, 8, 2, sq, sk, seed=i)
        with torch._dynamo.config.patch(error_on_recompile=i >= compiles):
            out, lse = compiled(q, k, v)
        ref_out, ref_lse = fn(q, k, v)
        torch.cuda.synchronize()
        assert torch.equal(out, ref_out), (sq, sk)
        assert torch.equal(lse, ref_lse), (sq, sk)
    assert _op_graphs(counter) == compiles


def test_compiled_sdpa_drop_in(rt):
    def fn(q, k, v):
        return fc.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True)
    for i, s in enumerate((64, 200, 333)):
        q, k, v = _qkv(1, 16, 4, s, s, 128, torch.float16, seed=i)
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            assert torch.equal(compiled(q, k, v), fn(q, k, v))


def test_compile_reduce_overhead_replays_cuda_graphs(rt):
    """mode="reduce-overhead": inductor's CUDA graph trees record the op and replay it."""

    def fn(q, k, v):
        return fc.attention(q, k, v, causal="bottom_right")

    torch._dynamo.reset()
    compiled = torch.compile(fn, mode="reduce-overhead", fullgraph=True)
    for seed in range(4):  # warm-up, record, replays: fresh data each time
        q, k, v = _qkv(1, 8, 2, 64, 200, seed=seed)
        out = compiled(q, k, v).clone()  # the graph's output buffer is reused by the next replay
        assert torch.equal(out, fn(q, k, v)), seed


def _capture(fn):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()  # warm-up outside the graph: dispatch decided and cached, extension loaded
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = fn()
    return graph, result


@pytest.mark.parametrize("via", ["attention", "op"])
def test_cuda_graph_capture_replays_on_new_inputs(rt, via):
    """Captured with grouped heads and bottom-right alignment (rows without keys included); new
    data copied into the same input tensors, then replayed: the eager result of the new data."""
    q, k, v = _qkv(2, 8, 2, 300, 120, seed=1)
    if via == "attention":
        call = lambda: fc.attention(q, k, v, causal="bottom_right", return_lse=True)  # noqa: E731
    else:
        call = lambda: torch.ops.flashcore.attention(q, k, v, "bottom_right", None)  # noqa: E731
    graph, (out, lse) = _capture(call)
    for seed in (2, 3):
        new_q, new_k, new_v = _qkv(2, 8, 2, 300, 120, seed=seed)
        q.copy_(new_q), k.copy_(new_k), v.copy_(new_v)
        graph.replay()
        ref_out, ref_lse = fc.attention(new_q, new_k, new_v, causal="bottom_right", return_lse=True)
        torch.cuda.synchronize()
        assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse), seed
    assert (lse[:, :, :180] == float("inf")).all()
