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
