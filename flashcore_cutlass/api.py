"""Public attention functions: argument checks, dispatch, the op call.

Argument rules (each violation is a TypeError for a wrong type, a ValueError for a wrong value,
raised before anything runs on the GPU):

- ``causal``: False; True or "top_left" (torch's ``is_causal``: query row r sees keys 0..r);
  "bottom_right" (FlashAttention's alignment: row r sees keys 0..r + Sk - Sq, so the last query
  row sees every key, as in decoding with a KV cache, Sq < Sk). Both are the same when Sq == Sk.
  With "bottom_right" and Sq > Sk the first Sq - Sk rows see no key: their output is 0 and their
  LSE +inf (FlashAttention's convention; what the kernels write). Any other value is refused: a
  TypeError for another type (an int, None, a tensor; a NumPy bool counts as a bool), a
  ValueError for another string.
- ``is_causal`` (the SDPA drop-in: top-left, like torch) / ``return_lse`` / ``enable_gqa``: a
  ``bool`` (a NumPy bool scalar is accepted as well), as torch SDPA insists.
- Heads: q has H heads, k and v Hkv heads, H a multiple of Hkv (grouped-query attention; MQA
  for Hkv = 1): query head h reads key/value head h // (H // Hkv), and K/V are never copied or
  repeated. Another count is a ValueError naming both. Like torch SDPA, the drop-in needs
  ``enable_gqa=True`` for Hkv != H, except Hkv = 1, which torch broadcasts (the same result).
- Head dims: q and k share D, v may have its own Dv (the output's); each a multiple of 8 up to
  256. Dv != D runs on the padding families (sm90, scalar) at the variant of max(D, Dv).
- ``scale``: None (1/sqrt(head_dim), Q/K's) or a real number (``int``, ``float``, NumPy scalar; not a
  ``bool``, not a tensor) that is finite and within float32 range. Any sign: a negative or zero
  scale computes ``softmax(scale * Q K^T) V`` exactly like the math definition (every visible key
  weighs the same for 0). NaN and inf are refused.
- Empty problems are not launched, like SDPA: batch, heads or seqlen_q of 0 give empty results of
  the right shapes; seqlen_k == 0 with queries gives an output of zeros (an empty sum, what SDPA's
  math definition gives) and an LSE of -inf (the logsumexp of no scores; unlike the +inf of rows
  that a bottom-right mask leaves without keys, above).
- seqlen_q and seqlen_k at most 2^30 and batch*heads at most 2^31-1 (the kernels index with
  32-bit ints); beyond that a ValueError. Any batch and head count otherwise (the grid folds
  batch*heads).
- Layout: the last dimension contiguous; other strides free. Inputs that are not 16-byte
  aligned (a data pointer or a stride that is not a multiple of 16 bytes) are dispatched to a
  family that takes them (scalar); when none is built, a ValueError names the fix.

Tracing: under torch.compile / torch.export (and for tensor subclasses such as FakeTensor),
``attention()`` checks its arguments as above and calls the library op ``flashcore::attention``
(:mod:`flashcore_cutlass.op`), opaque to the tracer; it dispatches and launches when the graph
runs. Eager calls run the same code without the op's dispatcher round trip.

The eager hot path: a shape's dispatch decision is made once here (registry) and recorded in the
binding (``flashcore::remember_dispatch``); a later call of that shape without a window or softcap,
whose scalar arguments pass identity tests (``causal`` a bool or a mask name, ``scale`` None or a
finite float, ``return_lse`` a bool), goes through ``flashcore::fwd_cached`` straight to the launch:
the binding computes the key, refuses grad and (for the drop-in) other head counts, and checks every
operand as always; any call it does not serve takes the Python path above.
"""

from __future__ import annotations

import numbers
import os
import sys

import torch

from .op import BOTTOM_RIGHT, NO_MASK, TOP_LEFT
from .problem import OPEN_SIDE, Problem, dispatched_problem, gqa_packed, mask_offsets
from .runtime import get_runtime
from .runtime import shape_cache as _dispatch_cache  # the hot path: one dict lookup (owned by runtime)

SUPPORTED_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16"}
MAX_HEAD_DIM = 256
NO_WINDOW = (-1, -1)
ALIGN_BYTES = 16  # what 128-bit vector and TMA copies need (Problem.aligned16)
FLT_MAX = 3.4028234663852886e38  # the op passes the scale as a float32
MAX_SEQLEN = 1 << 30  # kMaxSeqlen in templates/include/flashcore/api.h
MAX_BATCH_HEADS = 2**31 - 1
MAX_GROUP = 65535  # query heads per key/value head: one launch's grid (launch_chunked in api.h)
_attention_op = torch.ops.flashcore.attention.default  # registered by the .op import above
# False in eager mode, True while Dynamo traces (torch.compile, strict export); a third of the
# cost of torch.compiler.is_compiling. Non-strict tracers pass tensor subclasses (FakeTensor).
_is_dynamo_compiling = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor (dtype {value.dtype}, shape {tuple(value.shape)})"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _as_bool(name: str, value) -> bool:
    """``value`` as a bool: True/False, or a NumPy bool scalar; anything else is a TypeError."""
    if value is True or value is False:
        return value
    t = type(value)
    if t.__module__ == "numpy" and t.__name__ in ("bool_", "bool"):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {_describe(value)}")


def _as_causal(causal) -> str:
    """The mask ``causal`` names, spelled as the op takes it: False -> "none", True ->
    "top_left", "top_left" / "bottom_right" as they are; TypeError/ValueError otherwise."""
    if type(causal) is str:
        if causal == TOP_LEFT:
            return TOP_LEFT
        if causal == BOTTOM_RIGHT:
            return BOTTOM_RIGHT
        raise ValueError(f"causal must be False, True, 'top_left' or 'bottom_right', got {causal!r}")
    try:
        flag = _as_bool("causal", causal)
    except TypeError:
        raise TypeError(f"causal must be a bool, 'top_left' or 'bottom_right', got {_describe(causal)}") from None
    return TOP_LEFT if flag else NO_MASK


def _as_scale(scale) -> float:
    """A finite float32-representable float from a real number; TypeError/ValueError otherwise."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be None or a real number (int or float), got {_describe(scale)}")
    try:
        value = float(scale)
    except OverflowError:  # an int beyond float range
        value = float("inf")
    if not -FLT_MAX <= value <= FLT_MAX:  # also False for NaN
        raise ValueError(f"scale must be finite and within float32 range, got {scale!r}")
    return value


def _as_window(window, mask: str) -> tuple[int, int] | None:
    """``window`` as (left, right) ints >= -1 (-1: unbounded), None for no window (also for
    (-1, -1)); causal masks take right 0 (or -1, the same there). TypeError/ValueError otherwise."""
    if window is None:
        return None
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be None or a (left, right) pair of ints, got {_describe(window)}")
    sides = []
    for side, value in zip(("left", "right"), window):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"window {side} must be an int (-1: unbounded), got {_describe(value)}")
        if value < -1:
            raise ValueError(f"window {side} must be >= 0, or -1 for unbounded, got {value}")
        sides.append(int(value))
    left, right = sides
    if mask != NO_MASK:
        if right > 0:
            raise ValueError(f"window right = {right} with causal={mask!r}: a causal mask already ends each row's "
                             "keys at the diagonal (right = 0); pass causal=False for a two-sided window")
        right = 0
    if left == -1 and right == -1:
        return None
    if mask != NO_MASK and left == -1:
        return None  # the causal mask alone
    return left, right


def _as_softcap(softcap) -> float:
    """0.0 for None/0, else a positive finite float32-representable cap."""
    if softcap is None:
        return 0.0
    if isinstance(softcap, bool) or not isinstance(softcap, numbers.Real):
        raise TypeError(f"softcap must be None or a positive real number, got {_describe(softcap)}")
    value = float(softcap)
    if value == 0.0:
        return 0.0
    if not 0.0 < value <= FLT_MAX:  # also False for NaN, inf and negatives
        raise ValueError(f"softcap must be a positive finite number (0 or None: off), got {softcap!r}")
    return value


def _checked_args(causal, return_lse, scale, window, softcap) -> tuple:
    """attention()'s and attention_varlen()'s scalar arguments, checked on every call (the
    per-shape caches must not skip them): (mask, return_lse, scale, window, softcap as a float).
    For the usual values a few identity tests and one chained comparison."""
    if causal is False:
        mask = NO_MASK
    elif causal is True:
        mask = TOP_LEFT
    else:
        mask = _as_causal(causal)
    if return_lse is not True and return_lse is not False:
        return_lse = _as_bool("return_lse", return_lse)
    if scale is not None and (type(scale) is not float or not -FLT_MAX <= scale <= FLT_MAX):
        scale = _as_scale(scale)
    if window is not None:
        window = _as_window(window, mask)
    return mask, return_lse, scale, window, 0.0 if softcap is None else _as_softcap(softcap)


def window_diagonals(mask: str, window) -> tuple[bool, int, int | None]:
    """(bottom_right, right, left) of a masked call: row r sees key c iff r + a + left <= c <=
    r + a + right, with a = Sk - Sq when ``bottom_right`` else 0 (left None: no left edge). The
    window's diagonals follow the causal alignment; without causal, FlashAttention's
    bottom-right one. An open right side is OPEN_SIDE: the binding clamps it to the sequence."""
    bottom_right = mask == BOTTOM_RIGHT or (mask == NO_MASK and window is not None)
    if window is None:
        return bottom_right, 0, None
    left, right = window  # causal masks have right 0 here (_as_window)
    return bottom_right, (right if right >= 0 else OPEN_SIDE), (-left if left >= 0 else None)


def _mask_offsets(mask: str, window, seqlen_q: int, seqlen_k: int) -> tuple[int, int | None]:
    """(causal_offset, left_offset) of a masked call of these lengths (the binding clamps values
    beyond the sequences)."""
    return mask_offsets(window_diagonals(mask, window)[0], window, seqlen_q, seqlen_k)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    _check_tensors(q, k, v)
    # Last, so that shape and dtype errors are reported (and testable) on any device.
    _check_device(q, k, v)


def _check_tensors(q, k, v) -> None:
    """Types, ranks, dtypes, layouts and shapes: everything but the device (the op's fake
    implementation runs these on fake tensors, symbolic sizes included)."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, seqlen, head_dim), got shape {tuple(t.shape)}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; supported: torch.float16, torch.bfloat16")
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must have a contiguous last dimension (stride 1), got strides {t.stride()}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"query, key, value dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"query, key, value are on different devices: {q.device}, {k.device}, {v.device}")
    d, dv = q.shape[-1], v.shape[-1]
    for name, dim in (("head_dim", d), ("value head_dim", dv)):
        if dim % 8 or not 8 <= dim <= MAX_HEAD_DIM:
            raise ValueError(f"{name} {dim} is not supported; supported: multiples of 8 up to {MAX_HEAD_DIM}")
    b, h, sq, _ = q.shape
    if k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"key shape {tuple(k.shape)} does not match query {tuple(q.shape)} (need (B, Hkv, Sk, D))")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"value shape {tuple(v.shape)} must match key shape {tuple(k.shape)} but for the last dimension "
            "(value is (B, Hkv, Sk, Dv))"
        )
    hkv, sk = k.shape[1], k.shape[2]
    if hkv != h and (hkv == 0 or h % hkv != 0):
        raise ValueError(
            f"query has {h} heads and key/value {hkv}: the query head count must be a multiple of the "
            "key/value head count (grouped-query attention)"
        )
    if b and h and sq:  # something to compute: the kernels' 32-bit index range
        if sq > MAX_SEQLEN or sk > MAX_SEQLEN:
            raise ValueError(
                f"seqlen_q = {sq}, seqlen_k = {sk}: flashcore kernels index sequences with 32-bit ints, "
                f"at most {MAX_SEQLEN} (2^30) rows"
            )
        if b * h > MAX_BATCH_HEADS:
            raise ValueError(f"batch * heads = {b} * {h} exceeds the kernels' 32-bit range (at most {MAX_BATCH_HEADS})")
        if h // hkv > MAX_GROUP:
            raise ValueError(f"query has {h // hkv} heads per key/value head, at most {MAX_GROUP} are supported")


def _check_device(q, k, v) -> None:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.device.type != "cuda":
            raise ValueError(f"{name} is on {t.device}; flashcore runs on CUDA devices only")


def _check_grad(q, k, v) -> None:
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise NotImplementedError(
            "flashcore_cutlass implements the forward pass only; run it under torch.no_grad() "
            "or use torch.nn.functional.scaled_dot_product_attention for training"
        )


def attention(q, k, v, causal: bool | str = False, scale: float | None = None, return_lse: bool = False, *,
              window: tuple[int, int] | None = None, softcap: float | None = None):
    """Attention forward with torch SDPA's layout and semantics.

    q: (B, H, Sq, D), k: (B, Hkv, Sk, D), v: (B, Hkv, Sk, Dv) with H a multiple of Hkv
    (grouped-query attention: query head h reads key/value head h // (H // Hkv); no copy of
    K/V; with fewer than 64 query rows each K/V head's query heads share its tiles as rows,
    problem.gqa_packed / gqa_row_packed); fp16 or bf16; D and Dv any multiples of 8 up to 256 (variants are built for
    64/128/256, sm90's also for 192; the sm90 and scalar kernels zero-pad smaller head dims in
    shared memory, no copy, and run Dv != D, e.g. 192/128, on their variant of the larger); last dim contiguous, other
    strides free (e.g. slices of a fused QKV tensor).

    ``causal``: False; True or "top_left" (torch's ``is_causal``: query row r sees keys 0..r);
    "bottom_right" (FlashAttention's: row r sees keys 0..r + Sk - Sq, i.e. the last query row
    sees every key: KV-cache decoding with Sq < Sk). With "bottom_right" and Sq > Sk the first
    Sq - Sk rows see no key: out = 0 and lse = +inf there. ``scale`` defaults to 1/sqrt(D); any
    finite value works, negative and zero included.

    ``window=(left, right)``: a sliding window (Mistral, Gemma-2), FlashAttention's semantics:
    query row r sees keys r + a - left .. r + a + right, a = the causal alignment's offset (0
    top-left, Sk - Sq bottom-right; without causal, bottom-right as in FlashAttention); -1 =
    unbounded on that side; with causal, right must be 0 or -1. Key tiles outside every row's
    window are skipped. ``softcap=c``: scores become c * tanh(scale * q.k / c) before the
    softmax (Gemma-2's logit softcap); the LSE is of the capped scores.

    Returns out (B, H, Sq, Dv), and with ``return_lse`` (a bool) also the fp32 natural-log
    logsumexp of each query row's scaled scores, (B, H, Sq). Works under torch.compile
    (fullgraph, dynamic shapes) and in CUDA graphs. See the module docstring for the argument
    rules and empty inputs.
    """
    # The eager hot path: a shape decided before, served by the binding's dispatch cache with no
    # Python between here and the launch (_fwd_cached: None where it does not serve the call).
    # Only arguments whose checks cost identity tests; everything else takes the path below.
    remember = False
    if (window is None and softcap is None and type(q) is torch.Tensor and q.is_cuda
            and (scale is None or (type(scale) is float and -FLT_MAX <= scale <= FLT_MAX))
            and (return_lse is False or return_lse is True)):
        mask = 0 if causal is False else 1 if causal is True else _MASK_CODES.get(causal) if type(causal) is str else None
        if mask is not None and not _is_dynamo_compiling():
            try:
                out, lse = _fwd_cached(q, k, v, mask, scale, True, not return_lse)
            except (RuntimeError, NotImplementedError):
                _check(q, k, v)  # a cached shape skipped the Python checks: report bad inputs clearly
                raise
            if out is not None:
                return (out, lse) if return_lse else out
            remember = True  # decided below, then recorded in the binding's cache
    mask, return_lse, scale, window, softcap = _checked_args(causal, return_lse, scale, window, softcap)
    if _is_dynamo_compiling() or (type(q) is not torch.Tensor and isinstance(q, torch.Tensor)):
        # Traced (or a tensor subclass, e.g. FakeTensor): the opaque library op, whose
        # implementation is _forward. Grad is refused here: inside the op it is not visible.
        _check_grad(q, k, v)
        left, right = NO_WINDOW if window is None else window
        out, lse = _attention_op(q, k, v, mask, scale, left, right, softcap)
    else:
        out, lse = _forward(q, k, v, mask, scale, window=window, softcap=softcap, remember=remember,
                            lse_unused=not return_lse)
    return (out, lse) if return_lse else out


def _forward(q, k, v, causal: str, scale: float | None, heads_must_match: bool = False, window=None,
             softcap: float = 0.0, remember: bool = False, lse_unused: bool = False):
    """(out, lse) of checked arguments (``causal`` as the op spells it, ``window`` as _as_window
    returns it, ``softcap`` 0.0 for off): the eager path, and the implementation of the
    flashcore::attention op. ``heads_must_match``: the SDPA drop-in's rule without enable_gqa
    (read from the cache key, which holds both head counts anyway). ``remember``: record the
    decision in the binding's dispatch cache (the hot path missed it: _fwd_cached). ``lse_unused``: the
    caller drops the returned lse, which the kernel may then leave inexact (FwdParams::lse_unused)."""
    masked = causal != NO_MASK or window is not None  # windows run on the masked (causal) variants
    mask_key = _mask_key(causal, window, softcap)
    # Hot path: a shape seen before skips the Python tensor checks; the op re-checks everything
    # cheaply in C++ (dtypes, shapes, head counts, strides, alignment, devices) before launching.
    try:
        key = _shape_key(q, k, v, mask_key)
        vid = _dispatch_cache.get(key)
    except (AttributeError, IndexError, TypeError):
        vid = None
    if vid is None:
        if heads_must_match:
            _check_heads_without_gqa(q, k)
        _check(q, k, v)
        b, h, sq, d = q.shape
        sk, dv = k.shape[2], v.shape[3]
        if not (b and h and sq and sk):  # never cached: nothing to launch
            _check_grad(q, k, v)
            return _empty_result(q, dv)
        vid = _dispatch(SUPPORTED_DTYPES[q.dtype], d, dv, masked, b, h, k.shape[1], sq, sk, _aligned16(q, k, v),
                        window_diagonals(causal, window)[0], window, softcap)
        key = _shape_key(q, k, v, mask_key)
        _dispatch_cache[key] = vid
    elif heads_must_match and key[_KEY_HEADS_K] != key[_KEY_HEADS] and key[_KEY_HEADS_K] != 1:
        _check_heads_without_gqa(q, k)  # raises
    _check_grad(q, k, v)
    if scale is None:
        scale = key[_KEY_HEAD_DIM] ** -0.5
    if remember and window is None and not softcap:
        _remember_dispatch(q, k, v, _MASK_CODES[causal], *(vid if type(vid) is tuple else (vid,)))
    try:
        if type(vid) is tuple:  # decoding with GQA, a group's query heads packed as rows (_dispatch)
            vid, key_begin, key_end = vid
            return _fwd_pack_gqa(vid, q, k, v, scale, key_begin, key_end, softcap)
        if window is None and not softcap:  # the common case: one subtraction at most, the short op
            # Row r sees key c iff c <= r + offset (causal variants only; others ignore it).
            offset = key[_KEY_SEQLEN_K] - key[_KEY_SEQLEN_Q] if causal == BOTTOM_RIGHT else 0
            return _fwd_dense(vid, q, k, v, scale, offset, lse_unused)
        offset, left = _mask_offsets(causal, window, key[_KEY_SEQLEN_Q], key[_KEY_SEQLEN_K])
        return _fwd(vid, q, k, v, scale, None, None, offset, left, softcap, None, None, 0, 0, False, lse_unused)
    except (RuntimeError, NotImplementedError):
        _check(q, k, v)  # a cached shape skipped the Python checks: report bad inputs clearly
        raise


def _dispatch(dtype: str, d: int, dv: int, masked: bool, b: int, h: int, hkv: int, sq: int, sk: int, aligned: bool,
              bottom_right: bool, window, softcap: float):
    """The dispatch decision _forward caches per shape: a variant id, or for a decoding call with
    grouped-query attention (problem.gqa_packed) (variant id, key_begin, key_end), the variant
    chosen for the packed problem as the kernels run it."""
    problem = Problem(dtype, d, masked, b, h, sq, sk, aligned, dv, bottom_right, window, softcap or 0.0, heads_kv=hkv)
    packed = gqa_packed(problem, hkv)
    if packed is None:
        rt = get_runtime()
        # 1 < Sq < 64 with a group: a variant that packs the group's heads into its tiles' rows, where
        # built; else the problem with its K/V heads (the one definition benchmarks and `tune --heads-k` share).
        return rt.variant_id(dispatched_problem(problem, hkv, rt.has_candidates))
    packed_problem, begin, end = packed
    if os.environ.get("FLASHCORE_PRINT_DISPATCH") == "1":  # the registry's line names the packed problem
        print(f"flashcore dispatch: {problem} runs packed: {packed_problem} over keys "
              f"[{begin}, {end})", file=sys.stderr)
    return get_runtime().variant_id(packed_problem), begin, end


def _empty_result(q, dv: int):
    """(out, lse) of a problem with nothing to launch (checked inputs with a zero-size dimension;
    ``dv``: value's head dim, the output's)."""
    b, h, sq, _ = q.shape
    if b and h and sq:  # no keys: empty sums
        out = q.new_zeros((b, h, sq, dv))
        lse = torch.full((b, h, sq), float("-inf"), dtype=torch.float32, device=q.device)
    else:
        out = q.new_empty((b, h, sq, dv))
        lse = q.new_empty((b, h, sq), dtype=torch.float32)
    return out, lse


def _aligned16(q, k, v) -> bool:
    """Problem.aligned16: the data pointers of q, k, v and the strides of their dimensions of
    extent > 1 are multiples of 16 bytes (fp16/bf16: 8 elements; the op gives an extent-1
    dimension a packed stride, it is never stepped along). On the hot path: contiguous tensors
    (strides are multiples of head_dim >= 64) cost three pointer reads and three flag reads."""
    if (q.data_ptr() | k.data_ptr() | v.data_ptr()) & (ALIGN_BYTES - 1):
        return False
    if q.is_contiguous() and k.is_contiguous() and v.is_contiguous():
        return True
    elements = ALIGN_BYTES // 2 - 1  # 2-byte elements; other dtypes never dispatch
    for t in (q, k, v):
        b, h, s, _ = t.shape
        sb, sh, ss, _ = t.stride()
        if ((sb if b > 1 else 0) | (sh if h > 1 else 0) | (ss if s > 1 else 0)) & elements:
            return False
    return True


def _mask_key(causal: str, window, softcap: float):
    """What of the mask a dispatch decision depends on (the problem key's mask part is derived
    from it): the common cases cost one comparison and give a bool (masked or not) or the
    bottom-right alignment; windows and softcap a tuple."""
    if window is None and not softcap:
        return causal if causal == BOTTOM_RIGHT else causal != NO_MASK
    return causal, window, softcap > 0


def _shape_key(q, k, v, mask_key) -> tuple:
    """The hot path's cache key: everything the dispatch decision and the skipped Python checks
    depend on (``mask_key``: whether the call is masked, i.e. runs a masked variant, and the mask
    parameters the problem key holds: alignment, window, softcap). The key/value head count decides no variant (every variant takes any divisor),
    but a cached decision must not let another count skip the check of its rule."""
    kv_shape = k.shape  # one shape read: each costs ~0.1 us
    return (q.dtype, mask_key, *q.shape, kv_shape[1], kv_shape[2], v.shape[3], _aligned16(q, k, v))


# Where _shape_key puts the sizes that the hot path reads back (each tensor.shape read costs ~0.1 us).
_KEY_HEADS, _KEY_SEQLEN_Q, _KEY_HEAD_DIM, _KEY_HEADS_K, _KEY_SEQLEN_K = 3, 4, 5, 6, 7


def _fwd(vid, q, k, v, scale, out, lse, *mask_args):
    global _fwd
    _fwd = get_runtime().fwd  # bind the op once; later calls go straight to it
    return _fwd(vid, q, k, v, scale, out, lse, *mask_args)


def _fwd_dense(vid, q, k, v, scale, causal_offset, lse_unused):
    global _fwd_dense
    _fwd_dense = get_runtime().fwd_dense  # bound once, like _fwd
    return _fwd_dense(vid, q, k, v, scale, causal_offset, lse_unused)


def _fwd_pack_gqa(vid, q, k, v, scale, key_begin, key_end, softcap):
    global _fwd_pack_gqa
    _fwd_pack_gqa = get_runtime().fwd_pack_gqa  # bound once, like _fwd
    return _fwd_pack_gqa(vid, q, k, v, scale, key_begin, key_end, softcap)


# The binding's mask codes (flashcore::fwd_cached, remember_dispatch) of the op's spellings.
_MASK_CODES = {NO_MASK: 0, TOP_LEFT: 1, BOTTOM_RIGHT: 2}


def _fwd_cached(q, k, v, mask, scale, gqa_ok, lse_unused):
    """The binding's cached dispatch (Runtime.fwd_cached), bound on first use; (None, None) while
    no runtime loads (the Python path then raises why)."""
    global _fwd_cached
    try:
        bound = get_runtime().fwd_cached
    except Exception:  # noqa: BLE001 - the Python path reports it, with the input checks first
        return None, None
    _fwd_cached = bound
    return bound(q, k, v, mask, scale, gqa_ok, lse_unused)


def _remember_dispatch(q, k, v, mask, vid, key_begin=0, key_end=0):
    """Record a decision in the binding's dispatch cache (Runtime.remember_dispatch)."""
    get_runtime().remember_dispatch(q, k, v, mask, vid, key_end > 0, key_begin, key_end)


def _check_dropout(dropout_p) -> None:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real):
        raise TypeError(f"dropout_p must be a real number, got {_describe(dropout_p)}")
    if not 0.0 <= dropout_p <= 1.0:  # also False for NaN
        raise ValueError(f"dropout_p must be in [0, 1], got {dropout_p!r}")
    if dropout_p != 0:
        raise NotImplementedError(f"flashcore_cutlass does not support dropout (dropout_p={dropout_p})")


def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None, enable_gqa=False
):
    """Drop-in for ``torch.nn.functional.scaled_dot_product_attention`` on the supported subset:
    no attention mask, no dropout, 4-D inputs (value's head dim may differ, as in torch). ``is_causal`` is
    top-left aligned, like torch's. Key/value with fewer heads than the query need
    ``enable_gqa=True`` (like torch, which refuses them otherwise), except a single key/value
    head, which torch broadcasts (the same result). Arguments are checked like
    :func:`attention` (``is_causal`` and ``enable_gqa`` must be bools)."""
    out = _sdpa_hot_path(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    if out is not None and out is not _NOT_DECIDED:
        return out
    return _sdpa_checked(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa,
                         remember=out is _NOT_DECIDED)


def _sdpa_checked(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, remember: bool = False):
    """The drop-in past its hot path: argument checks, then the traced op or the Python path
    (``remember``: record the shape's decision in the binding's cache; patch_sdpa calls this after
    its own hot-path attempt, so that a miss costs one attempt)."""
    if attn_mask is not None:
        raise NotImplementedError("flashcore_cutlass does not support attn_mask (only is_causal); use torch SDPA")
    if type(dropout_p) is not float or dropout_p != 0.0:
        _check_dropout(dropout_p)
    if enable_gqa is not False and enable_gqa is not True:
        enable_gqa = _as_bool("enable_gqa", enable_gqa)
    if is_causal is not True and is_causal is not False:
        is_causal = _as_bool("is_causal", is_causal)
    if scale is not None and (type(scale) is not float or not -FLT_MAX <= scale <= FLT_MAX):
        scale = _as_scale(scale)
    mask = TOP_LEFT if is_causal else NO_MASK
    # attention()'s two paths, with the head rule: in eager mode it reads the cache key's head counts.
    if _is_dynamo_compiling() or (type(query) is not torch.Tensor and isinstance(query, torch.Tensor)):
        if not enable_gqa:
            _check_heads_without_gqa(query, key)
        _check_grad(query, key, value)
        return _attention_op(query, key, value, mask, scale)[0]
    return _forward(query, key, value, mask, scale, not enable_gqa, remember=remember, lse_unused=True)[0]


_NOT_DECIDED = object()  # _sdpa_hot_path: a call it could serve once its shape is decided


def _sdpa_hot_path(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """attention()'s hot path for an SDPA call (the drop-in, patch_sdpa): its output where the
    binding's dispatch cache serves it (with the drop-in's head rule: gqa_ok); else None, or
    _NOT_DECIDED where only the shape's decision is missing (the Python path then records it)."""
    if (attn_mask is None and type(dropout_p) is float and dropout_p == 0.0 and (is_causal is False or is_causal is True)
            and (enable_gqa is False or enable_gqa is True) and type(query) is torch.Tensor and query.is_cuda
            and (scale is None or (type(scale) is float and -FLT_MAX <= scale <= FLT_MAX))
            and not _is_dynamo_compiling()):
        try:
            out, _ = _fwd_cached(query, key, value, 1 if is_causal else 0, scale, enable_gqa, True)
        except (RuntimeError, NotImplementedError):
            _check(query, key, value)
            raise
        return _NOT_DECIDED if out is None else out
    return None


def _check_heads_without_gqa(query, key) -> None:
    """torch SDPA without enable_gqa: key/value have the query's head count, or one head (which
    torch broadcasts over the query heads). Other argument errors are left to attention()."""
    try:
        hq, hkv = query.shape[1], key.shape[1]
    except (AttributeError, IndexError, TypeError):  # not tensors, or too few dims
        return
    if hkv != hq and hkv != 1 and query.ndim == 4 and key.ndim == 4:
        raise ValueError(
            f"query has {hq} heads and key/value {hkv}: pass enable_gqa=True for grouped-query attention "
            "(torch SDPA also refuses different head counts without it)"
        )
