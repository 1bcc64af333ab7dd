"""Packed variable-length attention (FlashAttention's ``flash_attn_varlen_func`` layout).

Sequences of different lengths are packed along one token axis, without padding:
q is (total_q, H, D), k and v (total_k, Hkv, D); sequence b owns query rows
``cu_seqlens_q[b]:cu_seqlens_q[b + 1]`` and key rows ``cu_seqlens_k[b]:cu_seqlens_k[b + 1]``.
The kernels read each sequence's rows in place (no copy, no padding work: tiles past a short
sequence's end skip all keys and store nothing). Masks, windows, softcap and grouped-query heads
work per sequence exactly as in :func:`flashcore_cutlass.attention`; the causal alignment and a
window's diagonals are per sequence (bottom-right: each sequence's last query sees its last key).
"""

from __future__ import annotations

import torch

from . import api
from .op import NO_MASK  # also registers the library ops
from .problem import Problem, with_packed_rows
from .runtime import get_runtime, shape_cache

_varlen_op = torch.ops.flashcore.attention_varlen.default  # registered by flashcore_cutlass.op


def _check_tensors(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k) -> None:
    _check_shapes(q, k, v, cu_seqlens_q, cu_seqlens_k)
    for name, value, rows in (("max_seqlen_q", max_seqlen_q, q.shape[0]), ("max_seqlen_k", max_seqlen_k, k.shape[0])):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {api._describe(value)}")
        if not 0 <= value <= rows:
            raise ValueError(f"{name} = {value} must be within 0..{rows} (the packed rows)")
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if cu.device != q.device:
            raise ValueError(f"{name} is on {cu.device} but query is on {q.device}")
    api._check_device(q, k, v)


def _check_shapes(q, k, v, cu_seqlens_q, cu_seqlens_k) -> None:
    """What needs no data and no device (the op's fake implementation runs it on fake tensors)."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name} must be 3-D (total_tokens, heads, head_dim), got shape {tuple(t.shape)}")
    # The 4-D rules (dtypes, head dims, head counts, strides) on (1, H, total, D) views.
    api._check_tensors(*(t.unsqueeze(0).transpose(1, 2) for t in (q, k, v)))
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if not isinstance(cu, torch.Tensor) or cu.dtype != torch.int32 or cu.dim() != 1 or cu.numel() < 1:
            raise TypeError(f"{name} must be a 1-D torch.int32 tensor of batch + 1 offsets, got {api._describe(cu)}")
    if cu_seqlens_q.numel() != cu_seqlens_k.numel():
        raise ValueError(f"cu_seqlens_q has {cu_seqlens_q.numel()} offsets and cu_seqlens_k {cu_seqlens_k.numel()}:"
                         " one per sequence plus one, the same count")


def check_offsets(cu_seqlens_q, cu_seqlens_k, total_q: int, total_k: int, max_seqlen_q: int, max_seqlen_k: int):
    """Validate the offsets' values (one device-to-host copy): start at 0, never decrease, end
    at the packed totals, no sequence longer than its max_seqlen. The kernels trust them: a
    wrong offset would read or write other sequences' rows."""
    for name, cu, total, longest in (("cu_seqlens_q", cu_seqlens_q, total_q, max_seqlen_q),
                                     ("cu_seqlens_k", cu_seqlens_k, total_k, max_seqlen_k)):
        values = cu.tolist()
        if values[0] != 0 or values[-1] != total:
            raise ValueError(f"{name} must start at 0 and end at the packed rows ({total}), got {values[0]}..{values[-1]}")
        lengths = [b - a for a, b in zip(values, values[1:])]
        if any(n < 0 for n in lengths):
            raise ValueError(f"{name} decreases: offsets must be non-decreasing")
        if lengths and max(lengths) > longest:
            raise ValueError(f"{name} has a sequence of {max(lengths)} rows, longer than max_seqlen ({longest})")


def attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int, max_seqlen_k: int,
                     causal: bool | str = False, scale: float | None = None, return_lse: bool = False, *,
                     window: tuple[int, int] | None = None, softcap: float | None = None,
                     validate: bool | None = None):
    """Attention over packed variable-length sequences.

    q: (total_q, H, D); k: (total_k, Hkv, D), v: (total_k, Hkv, Dv) (H a multiple of Hkv;
    fp16/bf16; D and Dv multiples of 8 up to 256; last dim contiguous). cu_seqlens_q/k: int32 tensors of batch + 1 offsets on the
    same device; max_seqlen_q/k: the longest sequence of each. ``causal``, ``scale``, ``window``
    and ``softcap`` as in :func:`flashcore_cutlass.attention`, per sequence: True / "top_left"
    aligns each sequence's first query with its first key (torch), "bottom_right" its last
    query with its last key (FlashAttention's causal; what chunked prefill needs).

    Returns out (total_q, H, Dv), and with ``return_lse`` the fp32 LSE (H, total_q) as
    FlashAttention lays it out. Rows that see no key: out 0, LSE +inf.

    ``validate`` (default: on, except while a CUDA graph is being captured) checks the offsets'
    values with one device-to-host copy; the kernels clamp them to the packed rows, so wrong
    offsets give wrong rows but never touch memory outside the tensors. Eager, CUDA graphs, and
    under torch.compile the library op flashcore::attention_varlen (fake implementation for the
    tracer; the offsets are validated when the graph runs).
    """
    mask, return_lse, scale, window, softcap = api._checked_args(causal, return_lse, scale, window, softcap)
    masked = mask != NO_MASK or window is not None
    if api._is_dynamo_compiling() or (type(q) is not torch.Tensor and isinstance(q, torch.Tensor)):
        # Traced (torch.compile, export) or a tensor subclass: the opaque library op
        # flashcore::attention_varlen, whose implementation is this function, run when the graph runs.
        api._check_grad(q, k, v)
        left, right = api.NO_WINDOW if window is None else window
        out, lse = _varlen_op(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, mask, scale, left,
                              right, softcap)
        return (out, lse) if return_lse else out
    # Hot path: a layout seen before skips the tensor checks (the op re-checks in C++) and the
    # dispatch; the key holds everything both read.
    try:
        key = (q.dtype, q.device, q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), cu_seqlens_q.dtype,
               cu_seqlens_q.shape, cu_seqlens_k.dtype, cu_seqlens_k.shape, cu_seqlens_q.device, cu_seqlens_k.device,
               max_seqlen_q, max_seqlen_k, mask, window, softcap,
               (q.data_ptr() | k.data_ptr() | v.data_ptr()) & 15 == 0)
        vid = shape_cache.get(("varlen", *key))
    except (AttributeError, TypeError):
        key, vid = None, None
    if vid is None:
        _check_tensors(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    api._check_grad(q, k, v)
    total_q, h, d = q.shape
    total_k, dv = k.shape[0], v.shape[2]
    if validate is None:
        validate = not (q.is_cuda and torch.cuda.is_current_stream_capturing())
    if validate:
        check_offsets(cu_seqlens_q, cu_seqlens_k, total_q, total_k, max_seqlen_q, max_seqlen_k)
    batch = cu_seqlens_q.shape[0] - 1
    if total_q == 0 or batch == 0 or max_seqlen_q == 0:
        out = q.new_empty((total_q, h, dv))
        lse = torch.empty((h, total_q), device=q.device, dtype=torch.float32)
        return (out, lse) if return_lse else out
    if vid is None:
        # Dispatch on the longest sequences.
        q4, k4, v4 = (t.unsqueeze(0).transpose(1, 2) for t in (q, k, v))
        problem = Problem(api.SUPPORTED_DTYPES[q.dtype], d, masked, batch, h, max_seqlen_q, max(1, max_seqlen_k),
                          api._aligned16(q4, k4, v4), dv, api.window_diagonals(mask, window)[0], window,
                          softcap or 0.0, heads_kv=k.shape[1])
        rt = get_runtime()
        # Short query sequences with grouped heads (decoding a batch of sequences, speculative
        # decoding): a variant that packs each group's query heads into its tiles' rows, where built.
        vid = rt.variant_id(with_packed_rows(problem, k.shape[1], rt.has_candidates, min_rows=1))
        if key is not None:
            shape_cache[("varlen", *key)] = vid
    # The diagonals relative to each sequence's alignment: the kernels add seqlen_k - seqlen_q per
    # sequence for bottom-right.
    bottom_right, right, left = api.window_diagonals(mask, window)
    # The binding takes the packed (total, H, D) tensors as they are and returns out (total, H, D)
    # and lse (H, total).
    out, lse = get_runtime().fwd(vid, q, k, v, d ** -0.5 if scale is None else scale, None, None, right, left,
                                 softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, bottom_right,
                                 not return_lse)
    return (out, lse) if return_lse else out
