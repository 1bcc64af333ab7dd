"""patch_sdpa's mechanics on the CPU: install and restore, nesting, and the routing rule (every
call here goes to torch, with its reason)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import flashcore_cutlass as fc
from flashcore_cutlass.patch import unsupported_reason

ORIGINAL = F.scaled_dot_product_attention


def qkv(h=4, hkv=4, d=64, dtype=torch.float16, s=8, dv=None):
    return (torch.randn(1, h, s, d, dtype=dtype), torch.randn(1, hkv, s, d, dtype=dtype),
            torch.randn(1, hkv, s, dv or d, dtype=dtype))


def test_context_manager_installs_and_restores():
    with fc.patch_sdpa() as patch:
        assert F.scaled_dot_product_attention is not ORIGINAL and patch.active
    assert F.scaled_dot_product_attention is ORIGINAL and not patch.active
    patch.restore()  # idempotent
    assert F.scaled_dot_product_attention is ORIGINAL


def test_global_patch_and_nesting():
    outer = fc.patch_sdpa()
    try:
        with fc.patch_sdpa():
            assert F.scaled_dot_product_attention != outer._sdpa
        assert F.scaled_dot_product_attention == outer._sdpa
    finally:
        outer.restore()
    assert F.scaled_dot_product_attention is ORIGINAL


def test_unsupported_calls_go_to_torch_with_their_reason(capfd, monkeypatch):
    monkeypatch.setenv("FLASHCORE_PRINT_DISPATCH", "1")
    q, k, v = qkv()
    with fc.patch_sdpa() as patch:
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(8, 8, dtype=torch.bool))
        F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, ORIGINAL(q.float(), k.float(), v.float(), is_causal=True))
    assert patch.counts == {"flashcore": 0, "torch": 3}
    assert patch.reasons == {"dtype torch.float32 (flashcore: float16, bfloat16)": 1, "attn_mask is given": 1,
                             "an input is not on a CUDA device": 1}
    err = capfd.readouterr().err
    assert "flashcore patch_sdpa: (1, 4, 8, 64) causal=True -> torch: dtype torch.float32" in err


@pytest.mark.parametrize("kwargs,reason", [
    (dict(dropout_p=0.1), "dropout_p is not 0"),
    (dict(d=100), "head_dim 100 (flashcore: multiples of 8 up to 256)"),
    (dict(d=264), "head_dim 264"),
    (dict(hkv=2), "different head counts without enable_gqa"),
    (dict(hkv=3), "shapes that torch itself rejects or broadcasts"),
    (dict(is_causal=1), "is_causal is not a bool"),
    (dict(), "an input is not on a CUDA device"),
    (dict(hkv=2, enable_gqa=True), "an input is not on a CUDA device"),
    (dict(hkv=1), "an input is not on a CUDA device"),  # torch broadcasts one key/value head
    (dict(dv=128), "an input is not on a CUDA device"),  # a value head dim of its own is taken
    (dict(dv=100), "head_dim 100 (flashcore: multiples of 8 up to 256)"),
])
def test_unsupported_reason(kwargs, reason):
    shape = {k: kwargs.pop(k) for k in ("hkv", "d", "dv") if k in kwargs}
    q, k, v = qkv(**shape)
    assert unsupported_reason(q, k, v, **kwargs).startswith(reason)


def test_grad_goes_to_torch():
    q, k, v = qkv()
    q.requires_grad_(True)
    assert unsupported_reason(q, k, v) == "an input requires grad (flashcore is forward-only)"
    with torch.no_grad():
        assert unsupported_reason(q, k, v) == "an input is not on a CUDA device"


def test_unknown_keyword_goes_to_torch():
    """A keyword a later torch adds reaches torch's function (which knows it) with the reason."""
    q, k, v = qkv()
    seen = {}

    def fake_torch_sdpa(*args, **kwargs):
        seen.update(kwargs)
        return args[0]

    F.scaled_dot_product_attention = fake_torch_sdpa
    try:
        with fc.patch_sdpa() as patch:
            F.scaled_dot_product_attention(q, k, v, new_option=3)
    finally:
        F.scaled_dot_product_attention = ORIGINAL
    assert seen["new_option"] == 3
    assert patch.reasons == {"arguments this flashcore does not know: new_option": 1}


def test_an_exception_inside_the_block_still_restores():
    with pytest.raises(RuntimeError, match="boom"):
        with fc.patch_sdpa():
            raise RuntimeError("boom")
    assert F.scaled_dot_product_attention is ORIGINAL
