"""attention_varlen's argument rules on the CPU (the kernels' side: test_varlen_gpu.py)."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_cutlass.varlen import check_offsets


def args(total_q=30, total_k=30, h=4, hkv=4, d=64, dtype=torch.float16):
    q = torch.randn(total_q, h, d).to(dtype)
    k = torch.randn(total_k, hkv, d).to(dtype)
    cu = torch.tensor([0, 10, total_q], dtype=torch.int32)
    cuk = torch.tensor([0, 10, total_k], dtype=torch.int32)
    return q, k, k.clone(), cu, cuk


def test_valid_cpu_arguments_fail_only_on_the_device():
    q, k, v, cu_q, cu_k = args()
    with pytest.raises(ValueError, match="query is on cpu; flashcore runs on CUDA devices only"):
        fc.attention_varlen(q, k, v, cu_q, cu_k, 20, 20, causal=True, window=(8, 0), softcap=30.0)
    v128 = torch.randn(30, 4, 128).half()  # a value head dim of its own
    with pytest.raises(ValueError, match="query is on cpu; flashcore runs on CUDA devices only"):
        fc.attention_varlen(q, k, v128, cu_q, cu_k, 20, 20)


@pytest.mark.parametrize("change,exc,message", [
    (dict(q=torch.randn(2, 30, 4, 64)), ValueError, "query must be 3-D (total_tokens, heads, head_dim)"),
    (dict(cu_q=torch.tensor([0, 10, 30])), TypeError, "cu_seqlens_q must be a 1-D torch.int32 tensor"),
    (dict(cu_k=torch.tensor([0, 30], dtype=torch.int32)), ValueError, "cu_seqlens_q has 3 offsets and cu_seqlens_k 2"),
    (dict(max_q=31), ValueError, "max_seqlen_q = 31 must be within 0..30"),
    (dict(max_k=2.0), TypeError, "max_seqlen_k must be an int"),
    (dict(causal="diagonal"), ValueError, "causal must be False, True, 'top_left' or 'bottom_right'"),
    (dict(window=(1, 2, 3)), TypeError, "window must be None or a (left, right) pair"),
    (dict(softcap=-1), ValueError, "softcap must be a positive finite number"),
    (dict(k=torch.randn(30, 3, 64).half()), ValueError, "query has 4 heads and key/value 3"),
    (dict(q=torch.randn(30, 4, 100).half()), ValueError, "head_dim 100 is not supported"),
])
def test_argument_errors(change, exc, message):
    q, k, v, cu_q, cu_k = args()
    kw = dict(q=q, k=k, v=v, cu_q=cu_q, cu_k=cu_k, max_q=20, max_k=20)
    extra = {name: change.pop(name) for name in ("causal", "window", "softcap") if name in change}
    kw.update(change)
    if "k" in change:
        kw["v"] = kw["k"]
    with pytest.raises(exc, match=message.replace("(", r"\(").replace(")", r"\)")):
        fc.attention_varlen(kw["q"], kw["k"], kw["v"], kw["cu_q"], kw["cu_k"], kw["max_q"], kw["max_k"], **extra)


def test_offsets_are_checked():
    cu = lambda *xs: torch.tensor(xs, dtype=torch.int32)  # noqa: E731
    check_offsets(cu(0, 10, 30), cu(0, 5, 7), 30, 7, 20, 5)
    with pytest.raises(ValueError, match="must start at 0 and end at the packed rows \\(30\\), got 1..30"):
        check_offsets(cu(1, 10, 30), cu(0, 5, 7), 30, 7, 20, 5)
    with pytest.raises(ValueError, match="end at the packed rows \\(7\\), got 0..6"):
        check_offsets(cu(0, 10, 30), cu(0, 5, 6), 30, 7, 20, 5)
    with pytest.raises(ValueError, match="cu_seqlens_q decreases"):
        check_offsets(cu(0, 20, 10, 30), cu(0, 1, 2, 7), 30, 7, 30, 5)
    with pytest.raises(ValueError, match="cu_seqlens_k has a sequence of 5 rows, longer than max_seqlen \\(4\\)"):
        check_offsets(cu(0, 10, 30), cu(0, 5, 7), 30, 7, 20, 4)


# ---------------------------------------------------------------------------------------------
# flashcore::attention_varlen, the op tracers see.
# ---------------------------------------------------------------------------------------------

def _packed(lens, h=4, hkv=2, d=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    total = sum(lens)
    q = torch.randn(total, h, d, generator=gen).to(torch.bfloat16)
    k, v = (torch.randn(total, hkv, d, generator=gen).to(torch.bfloat16) for _ in range(2))
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


@pytest.fixture
def cpu_varlen(monkeypatch):
    """The binding's packed path on CPU: the fp32 reference per sequence (bottom-right when the
    op says so), returning the binding's layouts: out (total, H, D), lse (H, total)."""
    from flashcore_cutlass import api, varlen
    from flashcore_cutlass.reference import reference_attention

    class Runtime:
        def variant_id(self, problem):
            return int(problem.causal)

        def has_candidates(self, problem):  # no variant packs GQA groups into rows here
            return problem.group == 1

        def fwd(self, vid, q, k, v, scale, out, lse, right, left, softcap, cu_q, cu_k, max_q, max_k, bottom_right,
                lse_unused):
            outs, lses = [], []
            cq, ck = cu_q.tolist(), cu_k.tolist()
            as4 = lambda t: t.unsqueeze(0).transpose(1, 2)  # noqa: E731
            for b in range(len(cq) - 1):
                causal = ("bottom_right" if bottom_right else "top_left") if vid == 1 else False
                o, l = reference_attention(as4(q[cq[b]:cq[b + 1]]), as4(k[ck[b]:ck[b + 1]]), as4(v[ck[b]:ck[b + 1]]),
                                           causal, scale)
                outs.append(o[0].transpose(0, 1))
                lses.append(l[0])
            return torch.cat(outs).to(q.dtype), torch.cat(lses, dim=1)

    monkeypatch.setattr(varlen, "get_runtime", lambda: Runtime())
    monkeypatch.setattr(api, "_check_device", lambda q, k, v: None)


def test_varlen_op_fake_implementation():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q, k, v = torch.empty(30, 8, 64, dtype=torch.float16), *(torch.empty(50, 2, 64, dtype=torch.float16),) * 2
        cu = torch.empty(4, dtype=torch.int32)
        out, lse = torch.ops.flashcore.attention_varlen(q, k, v, cu, cu, 20, 30, "bottom_right", None, 16, 0, 30.0)
        assert out.shape == (30, 8, 64) and out.dtype == torch.float16 and lse.shape == (8, 30)
        v32 = torch.empty(50, 2, 32, dtype=torch.float16)  # a value head dim of its own: out's
        assert torch.ops.flashcore.attention_varlen(q, k, v32, cu, cu, 20, 30)[0].shape == (30, 8, 32)
        with pytest.raises(ValueError, match="query must be 3-D"):
            torch.ops.flashcore.attention_varlen(q[None], k, v, cu, cu, 20, 30)


@pytest.mark.parametrize("causal", [False, True, "bottom_right"])
def test_varlen_compiles_fullgraph_to_the_op(cpu_varlen, causal):
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")

    def fn(q, k, v, cu, max_len):
        return fc.attention_varlen(q, k, v, cu, cu, max_len, max_len, causal=causal, return_lse=True)

    compiled = torch.compile(fn, backend=counter, fullgraph=True)
    q, k, v, cu = _packed([7, 20, 13])
    out, lse = compiled(q, k, v, cu, 20)
    want_out, want_lse = fn(q, k, v, cu, 20)
    assert torch.equal(out, want_out) and torch.equal(lse, want_lse) and lse.shape == (4, 40)
    op = torch.ops.flashcore.attention_varlen.default
    assert sum(any(n.target is op for n in g.graph.nodes) for g in counter.graphs) == 1
