"""Public attention functions: input checks, dispatch, the op call."""

from __future__ import annotations

import torch

from .problem import Problem
from .runtime import get_runtime

SUPPORTED_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16"}
SUPPORTED_HEAD_DIMS = (64, 128, 256)
ALIGN_BYTES = 16  # the kernels move 128-bit vectors

# (dtype, head_dim, causal, B, H, Sq, Sk) -> variant id: the hot path is one dict lookup.
_dispatch_cache: dict[tuple, int] = {}


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, seqlen, head_dim), got shape {tuple(t.shape)}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; supported: torch.float16, torch.bfloat16")
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must have a contiguous last dimension (stride 1), got strides {t.stride()}")
        elem = t.element_size()
        if t.data_ptr() % ALIGN_BYTES or any(s * elem % ALIGN_BYTES for s in t.stride()[:-1]):
            raise ValueError(
                f"{name} must be {ALIGN_BYTES}-byte aligned with strides that are multiples of "
                f"{ALIGN_BYTES // elem} elements (got data_ptr % 16 = {t.data_ptr() % 16}, strides {t.stride()})"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"query, key, value dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"query, key, value are on different devices: {q.device}, {k.device}, {v.device}")
    d = q.shape[-1]
    if d not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim {d} is not supported; supported: {SUPPORTED_HEAD_DIMS}")
    b, h, _, _ = q.shape
    if k.shape[0] != b or k.shape[1] != h or k.shape[3] != d:
        raise ValueError(f"key shape {tuple(k.shape)} does not match query {tuple(q.shape)} (need (B, H, Sk, D))")
    if v.shape != k.shape:
        raise ValueError(f"value shape {tuple(v.shape)} must equal key shape {tuple(k.shape)}")
    if k.shape[2] == 0 and q.shape[2] > 0:
        raise ValueError("key/value sequence length is 0: attention over no keys is undefined")
    # Last, so that shape and dtype errors are reported (and testable) on any device.
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.device.type != "cuda":
            raise ValueError(f"{name} is on {t.device}; flashcore runs on CUDA devices only")


def attention(q, k, v, causal: bool = False, scale: float | None = None, return_lse: bool = False):
    """Attention forward with torch SDPA's layout and semantics.

    q: (B, H, Sq, D), k and v: (B, H, Sk, D); fp16 or bf16; D in 64/128/256; last dim
    contiguous, other strides free (e.g. slices of a fused QKV tensor). ``causal`` is
    torch's ``is_causal`` (top-left aligned when Sq != Sk). ``scale`` defaults to 1/sqrt(D).
    Returns out (B, H, Sq, D), and with ``return_lse`` also the fp32 natural-log
    logsumexp of each query row's scaled scores, (B, H, Sq).
    """
    # Hot path: a shape seen before skips the Python checks; the op re-checks everything
    # cheaply in C++ (dtypes, shapes, strides, alignment, devices) before launching.
    try:
        vid = _dispatch_cache.get(_shape_key(q, k, causal))
    except (AttributeError, IndexError, TypeError):
        vid = None
    if vid is None:
        _check(q, k, v)
        b, h, sq, d = q.shape
        vid = get_runtime().variant_id(Problem(SUPPORTED_DTYPES[q.dtype], d, bool(causal), b, h, sq, k.shape[2]))
        _dispatch_cache[_shape_key(q, k, causal)] = vid
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise NotImplementedError(
            "flashcore_cutlass implements the forward pass only; run it under torch.no_grad() "
            "or use torch.nn.functional.scaled_dot_product_attention for training"
        )
    if scale is None:
        scale = q.shape[-1] ** -0.5
    try:
        out, lse = _fwd(vid, q, k, v, scale)
    except (RuntimeError, NotImplementedError):
        _check(q, k, v)  # a cached shape skipped the Python checks: report bad inputs clearly
        raise
    return (out, lse) if return_lse else out


def _shape_key(q, k, causal) -> tuple:
    """The hot path's cache key: everything the dispatch decision depends on."""
    return (q.dtype, causal, *q.shape, k.shape[2])


def _fwd(vid, q, k, v, scale):
    global _fwd
    _fwd = get_runtime().fwd  # bind the op once; later calls go straight to it
    return _fwd(vid, q, k, v, scale)


def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None, enable_gqa=False
):
    """Drop-in for ``torch.nn.functional.scaled_dot_product_attention`` on the supported subset:
    no attention mask, no dropout, no GQA, 4-D inputs with equal query/value head dims."""
    if attn_mask is not None:
        raise NotImplementedError("flashcore_cutlass does not support attn_mask (only is_causal); use torch SDPA")
    if dropout_p != 0.0:
        raise NotImplementedError(f"flashcore_cutlass does not support dropout (dropout_p={dropout_p})")
    if enable_gqa:
        raise NotImplementedError("flashcore_cutlass does not support grouped-query attention (enable_gqa=True)")
    return attention(query, key, value, causal=is_causal, scale=scale)
