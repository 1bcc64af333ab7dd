"""flashcore::attention: the attention forward as a torch library op, which is what torch.compile,
torch.export and other tracers see of :func:`flashcore_cutlass.attention`.

The eager path cannot be traced: dispatch reads data pointers (16-byte alignment picks the
family) and keeps its decisions in Python dicts. So under tracing ``attention()`` calls this op
instead, opaque to the tracer: its fake implementation gives the result shapes, its real one is
the eager path itself (``api._forward``), which dispatches when the compiled graph runs, cached
per shape as in eager mode, then launches. Eager calls go to ``api._forward`` directly, without
the dispatcher round trip.

Registered with torch.library's low-level API rather than ``torch.library.custom_op``: the latter
wraps every call in a Python autograd function, ~40 us a call against ~10 us on the CPU box it was
measured on; this op has no gradient anyway (Autograd falls through; the implementation refuses
inputs that require grad, as attention() does).

    flashcore::attention(Tensor q, Tensor k, Tensor v, str causal="none", float? scale=None,
        int window_left=-1, int window_right=-1, float softcap=0.0) -> (Tensor out, Tensor lse)

``causal`` is "none", "top_left" or "bottom_right"; ``scale`` None means 1/sqrt(head_dim);
``window_left/right`` a sliding window (-1: unbounded), ``softcap`` 0.0 = off (see
:func:`flashcore_cutlass.attention`). out is
(B, H, Sq, Dv) (v's head dim) in q's dtype and lse (B, H, Sq) fp32, both new contiguous tensors. No autograd.
"""

from __future__ import annotations

import torch

# The causal masks as the op spells them. "top_left" is torch's is_causal (row r sees keys
# 0..r); "bottom_right" is FlashAttention's (row r sees keys 0..r + Sk - Sq).
NO_MASK, TOP_LEFT, BOTTOM_RIGHT = "none", "top_left", "bottom_right"
CAUSAL_MASKS = (NO_MASK, TOP_LEFT, BOTTOM_RIGHT)

SCHEMA = (
    '(Tensor q, Tensor k, Tensor v, str causal="none", float? scale=None, int window_left=-1, int window_right=-1,'
    " float softcap=0.0) -> (Tensor out, Tensor lse)"
)

# Kept for the life of the process: the op's registrations go when this object does. A fragment of
# the "flashcore" namespace, whose TORCH_LIBRARY the binding defines when the extension loads.
_lib = torch.library.Library("flashcore", "FRAGMENT")
_lib.define("attention" + SCHEMA)


def _check_causal(causal: str) -> None:
    if causal not in CAUSAL_MASKS:
        raise ValueError(f"flashcore::attention: causal must be one of {CAUSAL_MASKS}, got {causal!r}")


def attention_op(q, k, v, causal=NO_MASK, scale=None, window_left=-1, window_right=-1, softcap=0.0):
    """The implementation: attention()'s eager path (any device: a CPU tensor gets its error)."""
    from . import api  # api imports this module; resolved when the op first runs

    _check_causal(causal)
    window = api._as_window((window_left, window_right), causal)
    return api._forward(q, k, v, causal, scale, window=window, softcap=api._as_softcap(softcap))


_lib.impl("attention", attention_op, "CompositeExplicitAutograd")
_lib.impl("attention", torch.library.fallthrough_kernel, "Autograd")  # no gradient: skip autograd


@torch.library.register_fake("flashcore::attention", lib=_lib)
def _attention_fake(q, k, v, causal=NO_MASK, scale=None, window_left=-1, window_right=-1, softcap=0.0):
    from . import api

    _check_causal(causal)
    api._as_window((window_left, window_right), causal)
    api._as_softcap(softcap)
    # The checks that need no data and no device (fake tensors may sit on any device): a traced
    # call with wrong shapes fails when it is traced, with the eager path's message.
    api._check_tensors(q, k, v)
    b, h, sq, _ = q.shape
    return q.new_empty((b, h, sq, v.shape[3])), q.new_empty((b, h, sq), dtype=torch.float32)


# flashcore::attention_varlen: attention_varlen() as tracers see it (same design as above).
VARLEN_SCHEMA = (
    "(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k, SymInt max_seqlen_q,"
    ' SymInt max_seqlen_k, str causal="none", float? scale=None, int window_left=-1, int window_right=-1,'
    " float softcap=0.0) -> (Tensor out, Tensor lse)"
)
_lib.define("attention_varlen" + VARLEN_SCHEMA)


def attention_varlen_op(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=NO_MASK, scale=None,
                        window_left=-1, window_right=-1, softcap=0.0):
    """The implementation: attention_varlen()'s eager path, offsets validated unless a CUDA graph
    is being captured (it runs when the compiled graph runs)."""
    from . import varlen

    _check_causal(causal)
    mask = False if causal == NO_MASK else causal  # attention_varlen's spelling
    return varlen.attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), int(max_seqlen_k), mask,
                                   scale, True, window=(window_left, window_right), softcap=softcap)


_lib.impl("attention_varlen", attention_varlen_op, "CompositeExplicitAutograd")
_lib.impl("attention_varlen", torch.library.fallthrough_kernel, "Autograd")


@torch.library.register_fake("flashcore::attention_varlen", lib=_lib)
def _attention_varlen_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=NO_MASK, scale=None,
                           window_left=-1, window_right=-1, softcap=0.0):
    from . import api, varlen

    _check_causal(causal)
    api._as_window((window_left, window_right), causal)
    api._as_softcap(softcap)
    varlen._check_shapes(q, k, v, cu_seqlens_q, cu_seqlens_k)
    total_q, h, _ = q.shape
    return q.new_empty((total_q, h, v.shape[2])), q.new_empty((h, total_q), dtype=torch.float32)
