"""Route ``torch.nn.functional.scaled_dot_product_attention`` to flashcore for whole models.

    with flashcore_cutlass.patch_sdpa() as patch:   # or: patch = patch_sdpa() ... patch.restore()
        model(**inputs)
    print(patch.counts)    # {"flashcore": 32, "torch": 0}
    print(patch.reasons)   # why calls went to torch: {"attn_mask is given": 3, ...}

A call goes to flashcore when flashcore computes it: no ``attn_mask``, no dropout, no gradient
needed, CUDA fp16/bf16 4-D tensors with one head dim (a multiple of 8 up to 256) for q, k and
v, and key/value heads that torch itself would accept (equal, one, or a divisor of the query
heads with ``enable_gqa=True``). ``is_causal`` (top-left, like torch), ``scale`` and
``enable_gqa`` carry over. Every other call goes to torch's own function unchanged, as does a call
that flashcore cannot serve here (no extension built, no variant for this device); errors in
the call's arguments that torch would raise are left to torch. ``FLASHCORE_PRINT_DISPATCH=1``
prints, per call, which path it took and why.

Patches nest: ``restore()`` (or leaving the ``with`` block) puts back the function that was
installed when the patch was made. The patch counts calls in Python: it is meant for eager
models (under ``torch.compile``, call :func:`flashcore_cutlass.scaled_dot_product_attention`).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import torch

from . import api
from .registry import MissingVariantError
from .runtime import ExtensionNotBuilt, StaleExtension, UnsupportedDevice

# Raised when flashcore cannot serve a supported call here: the call then goes to torch.
_UNAVAILABLE = (MissingVariantError, ExtensionNotBuilt, StaleExtension, UnsupportedDevice)


def unsupported_reason(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False) -> str | None:
    """Why flashcore does not take this SDPA call (None: it does). Reads only metadata."""
    if attn_mask is not None:
        return "attn_mask is given"
    if not isinstance(dropout_p, (int, float)) or isinstance(dropout_p, bool) or dropout_p != 0:
        return "dropout_p is not 0"
    tensors = (query, key, value)
    if not all(type(t) is torch.Tensor or isinstance(t, torch.Tensor) for t in tensors):
        return "an input is not a tensor"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "an input requires grad (flashcore is forward-only)"
    if query.dtype not in api.SUPPORTED_DTYPES or not (query.dtype == key.dtype == value.dtype):
        return f"dtype {query.dtype} (flashcore: float16, bfloat16)"
    if not (query.dim() == key.dim() == value.dim() == 4):
        return "inputs are not 4-D (batch, heads, seqlen, head_dim)"
    d, dv = query.shape[-1], value.shape[-1]
    if key.shape[-1] != d:
        return "query and key head dims differ"
    for dim in (d, dv):
        if dim % 8 or not 8 <= dim <= api.MAX_HEAD_DIM:
            return f"head_dim {dim} (flashcore: multiples of 8 up to {api.MAX_HEAD_DIM})"
    if any(t.stride(-1) != 1 for t in tensors):
        return "a last dimension is not contiguous"
    hq, hkv = query.shape[1], key.shape[1]
    if key.shape[:3] != value.shape[:3] or key.shape[0] != query.shape[0] or hkv == 0 or hq % hkv:
        return "shapes that torch itself rejects or broadcasts"
    if hkv not in (hq, 1) and enable_gqa is not True:
        return "different head counts without enable_gqa"
    if type(is_causal) is not bool:
        return "is_causal is not a bool"
    if not all(t.is_cuda for t in tensors):
        return "an input is not on a CUDA device"
    return None


class SdpaPatch:
    """An installed patch: counts per path, the reasons calls went to torch, and ``restore()``."""

    def __init__(self):
        self.counts = Counter(flashcore=0, torch=0)
        self.reasons: Counter = Counter()
        self._torch_sdpa = torch.nn.functional.scaled_dot_product_attention
        self._active = True
        torch.nn.functional.scaled_dot_product_attention = self._sdpa

    def _sdpa(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False, **kwargs):
        hot = None
        if not kwargs:  # a shape flashcore served before: the binding's dispatch cache, no checks here
            hot = api._sdpa_hot_path(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
            if hot is not None and hot is not api._NOT_DECIDED:
                self._count("flashcore", None, query, is_causal)
                return hot
        reason = "arguments this flashcore does not know: " + ", ".join(sorted(kwargs)) if kwargs else None
        reason = reason or unsupported_reason(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if reason is None:
            try:
                out = api._sdpa_checked(query, key, value, None, 0.0, is_causal, scale, enable_gqa,
                                        remember=hot is api._NOT_DECIDED)
            except _UNAVAILABLE as exc:
                reason = f"flashcore cannot run it here: {exc}"
            else:
                self._count("flashcore", None, query, is_causal)
                return out
        self._count("torch", reason, query, is_causal)
        extra = {"enable_gqa": enable_gqa} if enable_gqa else {}
        return self._torch_sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                scale=scale, **extra, **kwargs)

    def _count(self, path: str, reason: str | None, query, is_causal) -> None:
        self.counts[path] += 1
        if reason is not None:
            self.reasons[reason] += 1
        if os.environ.get("FLASHCORE_PRINT_DISPATCH") == "1":
            shape = tuple(query.shape) if isinstance(query, torch.Tensor) else "?"
            why = f": {reason}" if reason else ""
            print(f"flashcore patch_sdpa: {shape} causal={is_causal} -> {path}{why}", file=sys.stderr)

    @property
    def active(self) -> bool:
        return self._active

    def restore(self) -> None:
        """Put back the function that was installed when this patch was made (idempotent)."""
        if self._active:
            torch.nn.functional.scaled_dot_product_attention = self._torch_sdpa
            self._active = False

    def __enter__(self) -> "SdpaPatch":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def patch_sdpa() -> SdpaPatch:
    """Install the patch now and return it: a context manager (restores on exit) or, called on
    its own, a global patch until ``restore()``. See the module docstring for the routing rules."""
    return SdpaPatch()
