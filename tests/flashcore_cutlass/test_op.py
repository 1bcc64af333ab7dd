"""flashcore::attention, the library op that tracers see, on CPU: its schema, opcheck, its fake
implementation, and torch.compile / torch.export / make_fx around flashcore_cutlass.attention.

The kernels need a GPU, so here the binding's op is a CPU stand-in that computes the fp32
reference (``cpu_kernels``): everything in Python runs as on the GPU (argument checks, the
causal offset, dispatch and its cache), and what the tracers see is exactly the real op.
The same checks with the real kernels: test_op_gpu.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_cutlass import api, op
from flashcore_cutlass.reference import reference_attention

SCHEMA = ('flashcore::attention(Tensor q, Tensor k, Tensor v, str causal="none", float? scale=None,'
          " int window_left=-1, int window_right=-1, float softcap=0.) -> (Tensor out, Tensor lse)")


class _Runtime:
    """Dispatch stand-in: variant 1 is causal, 0 is not (as real variants are one or the other);
    with ``packing``, variant 2 runs GQA groups packed into rows (problem.gqa_row_packed)."""

    def __init__(self, packing: bool = False):
        self.problems = []
        self.packing = packing

    def variant_id(self, problem):
        self.problems.append(problem)
        return 2 if problem.group > 1 else int(problem.causal)

    def has_candidates(self, problem):
        return self.packing or problem.group == 1


@pytest.fixture
def cpu_kernels(monkeypatch):
    """The binding's flashcore::fwd on CPU: the fp32 reference, in the op's dtypes and layout
    (out contiguous in q's dtype, lse fp32), honouring the causal offset like the kernels."""
    calls = []

    def fwd(vid, q, k, v, scale, out, lse, causal_offset):
        assert out is None and lse is None and type(scale) is float and type(causal_offset) is int
        calls.append((vid, tuple(q.shape), tuple(k.shape), causal_offset))
        ref_out, ref_lse = reference_attention(q, k, v, vid >= 1, scale, causal_offset=causal_offset)
        return ref_out.to(q.dtype).contiguous(), ref_lse.contiguous()

    def fwd_pack_gqa(vid, q, k, v, scale, key_begin, key_end, softcap):
        """The binding's packing, as views: (B, H, 1, D) as (B, Hkv, G, D) rows, keys
        [key_begin, key_end), the unmasked reference; results in the caller's layout."""
        assert vid == 0 and type(scale) is float and softcap == 0.0  # the packed problem is unmasked
        b, h, sq, _ = q.shape
        hkv = k.shape[1]
        assert sq == 1 and h % hkv == 0 and hkv < h
        calls.append(("pack_gqa", tuple(q.shape), tuple(k.shape), key_begin, key_end))
        rows = q.reshape(b, hkv, h // hkv, q.shape[3])
        ref_out, ref_lse = reference_attention(rows, k[:, :, key_begin:key_end], v[:, :, key_begin:key_end], False, scale)
        return ref_out.to(q.dtype).reshape(b, h, 1, v.shape[3]), ref_lse.reshape(b, h, 1)

    rt = _Runtime()
    monkeypatch.setattr(api, "get_runtime", lambda: rt)
    monkeypatch.setattr(api, "_fwd", fwd)
    monkeypatch.setattr(api, "_fwd_pack_gqa", fwd_pack_gqa)
    monkeypatch.setattr(api, "_fwd_dense", lambda vid, q, k, v, scale, offset, lse_unused: fwd(vid, q, k, v, scale, None,
                                                                                                  None, offset))
    monkeypatch.setattr(api, "_check_device", lambda q, k, v: None)
    monkeypatch.setattr(api, "_dispatch_cache", {})
    return calls


def _qkv(b=1, h=4, sq=8, sk=8, d=64, hkv=None, dtype=torch.bfloat16, seed=0, dv=None):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, sq, d, generator=gen).to(dtype)
    k, v = (torch.randn(b, hkv or h, sk, dim, generator=gen).to(dtype) for dim in (d, dv or d))
    return q, k, v


def _reference(q, k, v, causal, scale=None):
    ref = {False: False, True: "top_left"}.get(causal, causal)
    out, lse = reference_attention(q, k, v, ref, scale)
    return out.to(q.dtype), lse


# ---------------------------------------------------------------------------------------------
# The op itself.
# ---------------------------------------------------------------------------------------------

def test_schema():
    assert str(torch.ops.flashcore.attention.default._schema) == SCHEMA
    assert op.CAUSAL_MASKS == ("none", "top_left", "bottom_right")


OPCHECK_CASES = {
    "mha": ((2, 4, 9, 9, 64, None), "none", None),
    "gqa_top_left": ((1, 8, 7, 13, 64, 2), "top_left", 0.2),
    "mqa_bottom_right_decode": ((2, 4, 1, 17, 128, 1), "bottom_right", None),
    "gqa_bottom_right_rows_without_keys": ((1, 6, 12, 5, 64, 3), "bottom_right", -0.5),
    "no_keys": ((1, 2, 4, 0, 64, None), "top_left", None),
    "no_queries": ((1, 2, 0, 4, 64, None), "none", None),
    "value_head_dim_192_128": ((1, 4, 9, 9, 192, 2, 128), "top_left", None),
    "value_head_dim_no_keys": ((1, 2, 4, 0, 64, None, 32), "top_left", None),
}


@pytest.mark.parametrize("case", sorted(OPCHECK_CASES))
def test_opcheck(cpu_kernels, case):
    """torch.library.opcheck: schema, autograd registration, fake tensors against real results,
    AOTAutograd with dynamic shapes."""
    shape, causal, scale = OPCHECK_CASES[case]
    q, k, v = _qkv(*shape[:5], hkv=shape[5], dv=shape[6] if len(shape) > 6 else None)
    torch.library.opcheck(torch.ops.flashcore.attention.default, (q, k, v, causal, scale))


def test_op_computes_what_attention_computes(cpu_kernels):
    q, k, v = _qkv(1, 6, 12, 5, hkv=2)
    out, lse = torch.ops.flashcore.attention(q, k, v, "bottom_right", 0.25)
    ref_out, ref_lse = fc.attention(q, k, v, causal="bottom_right", scale=0.25, return_lse=True)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
    assert (lse[:, :, :7] == float("inf")).all() and not out[:, :, :7].any()  # Sq - Sk rows see no key
    assert cpu_kernels[-1] == (1, (1, 6, 12, 64), (1, 2, 5, 64), 5 - 12)


@pytest.mark.parametrize("hkv", [1, 2, 4])
@pytest.mark.parametrize("causal, window", [(False, None), ("bottom_right", None), (True, None),
                                            ("bottom_right", (5, 0)), (False, (3, 2))])
def test_gqa_decoding_dispatches_the_packed_problem(cpu_kernels, hkv, causal, window):
    """One query row per head with grouped-query attention: dispatch asks for the packed problem
    (B x Hkv heads of G rows, unmasked, over the key range the mask leaves) and the call computes
    what the per-head reference computes, for every mask; cached shapes take the same path."""
    q, k, v = _qkv(2, 8, 1, 13, hkv=hkv)
    for _ in range(2):  # dispatched, then from the shape cache
        out, lse = fc.attention(q, k, v, causal=causal, window=window, return_lse=True)
        ref = {False: False, True: "top_left"}[causal] if causal in (False, True) else causal
        ref_out, ref_lse = reference_attention(q, k, v, ref, window=window)
        assert torch.allclose(out.float(), ref_out, atol=2e-2) and torch.allclose(lse, ref_lse, atol=1e-4)
    begin, end = {(False, None): (0, 13), ("bottom_right", None): (0, 13), (True, None): (0, 1),
                  ("bottom_right", (5, 0)): (7, 13), (False, (3, 2)): (9, 13)}[(causal, window)]
    assert cpu_kernels[-2:] == [("pack_gqa", (2, 8, 1, 64), (2, hkv, 13, 64), begin, end)] * 2
    packed = api.get_runtime().problems[-1]
    assert (packed.causal, packed.batch, packed.heads, packed.seqlen_q, packed.seqlen_k) == (False, 2, hkv, 8 // hkv,
                                                                                             end - begin)
    assert len(api.get_runtime().problems) == 1  # the second call came from the cache


def test_print_dispatch_says_a_call_runs_packed(cpu_kernels, monkeypatch, capfd):
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    fc.attention(*_qkv(1, 8, 1, 13, hkv=2), causal="bottom_right", window=(5, 0))
    assert ("flashcore dispatch: bf16 B1 H8 Sq1 Sk13 D64 causal bottom-right window (5, 0) GQA 8/2 "
            "runs packed: bf16 B1 H2 Sq4 Sk6 D64 full over keys [7, 13)") in capfd.readouterr().err


def test_mha_decoding_and_longer_queries_are_not_packed(cpu_kernels):
    for q, k, v in (_qkv(1, 4, 1, 9), _qkv(1, 8, 2, 9, hkv=2)):
        fc.attention(q, k, v, causal="bottom_right")
        assert cpu_kernels[-1][0] == 1  # the causal variant, per head (no packing variant here)


def test_a_few_query_rows_with_groups_run_packed_where_a_packing_variant_is_built(cpu_kernels, monkeypatch):
    """2-63 query rows per head with GQA: dispatch asks for the problem with the group packed
    into rows (problem.gqa_row_packed) and runs the call's own tensors on its variant."""
    rt = _Runtime(packing=True)
    monkeypatch.setattr(api, "get_runtime", lambda: rt)
    q, k, v = _qkv(1, 8, 4, 9, hkv=2)
    out = fc.attention(q, k, v, causal="bottom_right")
    assert rt.problems[-1].group == 4 and rt.problems[-1].heads == 8 and cpu_kernels[-1][0] == 2
    assert torch.equal(out, _reference(q, k, v, "bottom_right")[0].to(q.dtype))
    fc.attention(*_qkv(1, 8, 64, 64, hkv=2), causal=True)  # full 64-row tiles per head: not packed
    assert rt.problems[-1].group == 1


def test_op_rejects_an_unknown_mask(cpu_kernels):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"flashcore::attention: causal must be one of \('none', 'top_left', "
                                         r"'bottom_right'\), got 'lower_right'"):
        torch.ops.flashcore.attention(q, k, v, "lower_right")


def test_op_refuses_inputs_that_require_grad(cpu_kernels):
    """No gradient: autograd falls through to the implementation, which refuses like attention()."""
    q, k, v = _qkv()
    q.requires_grad_(True)
    with pytest.raises(NotImplementedError, match="forward pass only"):
        torch.ops.flashcore.attention(q, k, v)
    with torch.no_grad():
        out, lse = torch.ops.flashcore.attention(q, k, v)
    assert not out.requires_grad and torch.equal(out, _reference(q.detach(), k, v, False)[0])


def test_fake_implementation_gives_shapes_and_checks_them():
    """Under FakeTensorMode (no data, no device work): the result metadata, and the eager path's
    errors for bad shapes, so a traced call fails when it is traced."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(2, 8, 33, 128, dtype=torch.float16)
        k = torch.empty(2, 2, 70, 128, dtype=torch.float16)
        out, lse = torch.ops.flashcore.attention(q, k, k, "bottom_right")
        assert out.shape == (2, 8, 33, 128) and out.dtype == torch.float16 and out.is_contiguous()
        assert lse.shape == (2, 8, 33) and lse.dtype == torch.float32 and lse.is_contiguous()
        k3 = torch.empty(2, 3, 70, 128, dtype=torch.float16)
        with pytest.raises(ValueError, match="query has 8 heads and key/value 3"):
            torch.ops.flashcore.attention(q, k3, k3)
        with pytest.raises(ValueError, match="head_dim 100 is not supported"):
            q100 = torch.empty(2, 8, 33, 100, dtype=torch.float16)
            torch.ops.flashcore.attention(q100, q100, q100)
        v64 = torch.empty(2, 2, 70, 64, dtype=torch.float16)  # a value head dim of its own: out's
        assert torch.ops.flashcore.attention(q, k, v64)[0].shape == (2, 8, 33, 64)
        q96 = torch.empty(2, 8, 33, 96, dtype=torch.float16)  # padded to the d128 variants
        assert torch.ops.flashcore.attention(q96, q96, q96, "top_left", None, 16, 0, 30.0)[0].shape == q96.shape
        with pytest.raises(ValueError, match="window right = 3 with causal='top_left'"):
            torch.ops.flashcore.attention(q, k, k, "top_left", None, 16, 3)
        with pytest.raises(ValueError, match="softcap must be a positive finite number"):
            torch.ops.flashcore.attention(q, k, k, "none", None, -1, -1, float("inf"))
        with pytest.raises(ValueError, match="causal must be one of"):
            torch.ops.flashcore.attention(q, k, k, "causal")


def test_meta_tensors_get_the_fake_implementation():
    q, k, v = (t.to("meta") for t in _qkv(2, 4, 5, 9, hkv=1))
    out, lse = torch.ops.flashcore.attention(q, k, v, "top_left")
    assert out.device.type == "meta" and out.shape == (2, 4, 5, 64) and lse.shape == (2, 4, 5)


# ---------------------------------------------------------------------------------------------
# attention() under tracing: the op, never the eager path's data-dependent Python.
# ---------------------------------------------------------------------------------------------

def test_eager_calls_do_not_go_through_the_op(cpu_kernels, monkeypatch):
    """The op costs a dispatcher round trip; eager calls run its implementation directly."""
    monkeypatch.setattr(api, "_attention_op", lambda *a: pytest.fail("eager call went through the op"))
    q, k, v = _qkv(hkv=2)
    fc.attention(q, k, v, causal="bottom_right")
    fc.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert len(cpu_kernels) == 2


def _compiled(fn, **kwargs):
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    return torch.compile(fn, backend=counter, fullgraph=True, **kwargs), counter


def _graphs_with_the_op(counter) -> int:
    """Graphs compiled that call flashcore::attention (Dynamo may hand the backend an empty graph
    of an analysis it restarts, e.g. to turn a float into a tensor: not a compile of ours)."""
    op_target = torch.ops.flashcore.attention.default
    return sum(any(n.target is op_target for n in g.graph.nodes) for g in counter.graphs)


LENGTHS = [(37, 91), (50, 120), (77, 160)]  # (Sq, Sk): three sequence lengths, Sq < Sk


@pytest.mark.parametrize("dynamic,compiles", [(True, 1), (None, 2)], ids=["dynamic", "automatic_dynamic"])
@pytest.mark.parametrize("causal", [False, True, "bottom_right"])
def test_compile_fullgraph_without_a_compile_per_length(cpu_kernels, dynamic, compiles, causal):
    """fullgraph=True: no graph break. dynamic=True compiles once for every length; the default
    compiles a static graph first and one dynamic graph at the first new length, then no more."""

    def fn(q, k, v):
        return fc.attention(q, k, v, causal=causal, return_lse=True)

    compiled, counter = _compiled(fn, dynamic=dynamic)
    for i, (sq, sk) in enumerate(LENGTHS):
        q, k, v = _qkv(2, 8, sq, sk, hkv=2, seed=sq)
        # After `compiles` lengths, another one must not compile again.
        with torch._dynamo.config.patch(error_on_recompile=i >= compiles):
            out, lse = compiled(q, k, v)
        ref_out, ref_lse = fn(q, k, v)  # eager: the same stand-in kernels
        assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
        expected = _reference(q, k, v, causal)
        assert torch.equal(out, expected[0]) and torch.equal(lse, expected[1])
    assert _graphs_with_the_op(counter) == compiles
    # The kernels saw the offset the mask needs at each length (0 for top-left / non-causal).
    offsets = [offset for _, _, _, offset in cpu_kernels]
    expected_offsets = [sk - sq if causal == "bottom_right" else 0 for sq, sk in LENGTHS]
    assert offsets == [o for o in expected_offsets for _ in range(2)]


@pytest.mark.parametrize("hkv,enable_gqa", [(4, True), (8, False), (1, False)], ids=["gqa", "mha", "mqa_broadcast"])
def test_compiled_sdpa_drop_in(cpu_kernels, hkv, enable_gqa):
    def fn(q, k, v):
        return fc.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.125, enable_gqa=enable_gqa)

    compiled, counter = _compiled(fn, dynamic=True)
    for i, sq in enumerate((17, 29, 41)):
        q, k, v = _qkv(1, 8, sq, sq, hkv=hkv, seed=sq)
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            assert torch.equal(compiled(q, k, v), _reference(q, k, v, True, 0.125)[0])
    assert _graphs_with_the_op(counter) == 1


def test_compiled_sdpa_refuses_other_head_counts_without_enable_gqa(cpu_kernels):
    q, k, v = _qkv(1, 8, 16, 16, hkv=2)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="pass enable_gqa=True"):
        torch.compile(lambda q, k, v: fc.scaled_dot_product_attention(q, k, v), backend="eager", fullgraph=True)(
            q, k, v)


def test_explain_finds_one_graph_and_no_break(cpu_kernels):
    q, k, v = _qkv(1, 8, 20, 30, hkv=1)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(lambda q, k, v: fc.attention(q, k, v, causal="bottom_right"))(q, k, v)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    nodes = [n.target for g in explanation.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert torch.ops.flashcore.attention.default in nodes


def test_export_strict_and_not(cpu_kernels):
    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            return fc.attention(q, k, v, causal="bottom_right", return_lse=True)

    q, k, v = _qkv(1, 8, 10, 24, hkv=2)
    for strict in (True, False):
        exported = torch.export.export(Attention(), (q, k, v), strict=strict)
        calls = [n for n in exported.graph.nodes if n.target is torch.ops.flashcore.attention.default]
        assert len(calls) == 1 and calls[0].args[3] == "bottom_right", exported.graph
        out, lse = exported.module()(q, k, v)
        assert torch.equal(out, _reference(q, k, v, "bottom_right")[0])


def test_make_fx_with_fake_tensors_traces_the_op():
    """Non-Dynamo tracers hand attention() tensor subclasses (FakeTensor): it takes the op."""
    from torch.fx.experimental.proxy_tensor import make_fx

    q, k, v = _qkv(1, 4, 6, 6, hkv=2)
    graph = make_fx(lambda q, k, v: fc.attention(q, k, v, causal=True), tracing_mode="fake")(q, k, v)
    targets = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert torch.ops.flashcore.attention.default in targets


def test_requires_grad_is_refused_when_traced():
    q, k, v = _qkv()
    q.requires_grad_(True)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="forward pass only"):
        torch.compile(lambda q, k, v: fc.attention(q, k, v), backend="eager", fullgraph=True)(q, k, v)


def test_compile_on_first_access_of_the_lazy_name():
    """``import flashcore_cutlass as fc`` loads nothing; the first ``fc.attention`` may happen
    inside a compiled function, which must still trace to one graph (a fresh process)."""
    code = """
import torch
import flashcore_cutlass as fc
assert "attention" not in vars(fc)
q = torch.randn(1, 4, 8, 64, dtype=torch.float16)
k = torch.randn(1, 2, 8, 64, dtype=torch.float16)
class Attention(torch.nn.Module):
    def forward(self, q, k, v):
        return fc.attention(q, k, v, causal=True)
graph = torch.export.export(Attention(), (q, k, k), strict=True).graph
targets = [n.target for n in graph.nodes if n.op == "call_function"]
assert torch.ops.flashcore.attention.default in targets, graph
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_sdpa_hot_path_outcomes(cpu_kernels, monkeypatch):
    """The drop-in and patch_sdpa on the three outcomes of the binding's hot path: an output (returned
    as it is), a shape not decided yet (the Python path runs it and records the decision), a call it
    does not take (the Python path, nothing recorded)."""
    from flashcore_cutlass import patch as patch_module

    q, k, v = _qkv(1, 4, 16, 16, 64)
    served = torch.full_like(q, 7.0)
    remembered = []
    monkeypatch.setattr(api, "_remember_dispatch", lambda *args: remembered.append(args[3:]))
    for outcome, records in ((api._NOT_DECIDED, [(1, 1)]), (None, [])):
        monkeypatch.setattr(api, "_sdpa_hot_path", lambda *args, outcome=outcome: outcome)
        remembered.clear()
        out = api.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert torch.equal(out, _reference(q, k, v, True)[0]) and remembered == records
    monkeypatch.setattr(api, "_sdpa_hot_path", lambda *args: served)
    assert api.scaled_dot_product_attention(q, k, v, is_causal=True) is served
    with patch_module.patch_sdpa() as patch:
        assert torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True) is served
        attempts = []
        monkeypatch.setattr(api, "_sdpa_hot_path", lambda *args: attempts.append(1) or api._NOT_DECIDED)
        monkeypatch.setattr(patch_module, "unsupported_reason", lambda *args: None)  # CPU tensors: as if on the GPU
        remembered.clear()
        assert torch.equal(torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                           _reference(q, k, v, True)[0])
        assert attempts == [1] and remembered == [(1, 1)]  # one attempt a call; the decision recorded
    assert patch.counts == {"flashcore": 2, "torch": 0}
