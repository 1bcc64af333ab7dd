"""fp32 reference attention, optionally on a sample of query rows (so that a reference for
a 16k-token problem fits in memory and time: the full score matrix would not)."""

from __future__ import annotations

import math

import torch


def sample_rows(seqlen_q: int, count: int = 256, device=None) -> torch.Tensor:
    """Query rows to check: all of them for short sequences, else the ends plus an even spread."""
    if seqlen_q <= count:
        return torch.arange(seqlen_q, device=device)
    spread = torch.linspace(0, seqlen_q - 1, count - 4, device=device).round().long()
    ends = torch.tensor([0, 1, seqlen_q - 2, seqlen_q - 1], device=device)
    return torch.unique(torch.cat([spread, ends]))


def alignment_offset(causal, seqlen_q: int, seqlen_k: int) -> int | None:
    """The causal mask as an offset (query row r sees key c iff c <= r + offset), None without one.
    ``causal``: False; True or "top_left" (torch's is_causal: offset 0); "bottom_right"
    (FlashAttention's: offset seqlen_k - seqlen_q, the last query row sees every key)."""
    if causal is False:
        return None
    if causal is True or causal == "top_left":
        return 0
    if causal == "bottom_right":
        return seqlen_k - seqlen_q
    raise ValueError(f"causal must be False, True, 'top_left' or 'bottom_right', got {causal!r}")


def visible_range(causal, window, seqlen_q: int, seqlen_k: int) -> tuple[int | None, int | None]:
    """The mask as two offsets (lo, hi): row r sees key c iff r + lo <= c <= r + hi, None for an
    open side. Written from FlashAttention's window definition, independently of the API's code:
    ``window = (left, right)``, -1 = unbounded, centred on the diagonal of the causal alignment
    (bottom-right without causal, as FlashAttention); causal sets right = 0."""
    offset = alignment_offset(causal, seqlen_q, seqlen_k)
    if window is None:
        return None, offset
    left, right = window
    align = seqlen_k - seqlen_q if offset is None else offset
    hi = align if offset is not None else (align + right if right >= 0 else None)
    lo = align - left if left >= 0 else None
    return lo, hi


def reference_attention(q, k, v, causal=False, scale: float | None = None, rows: torch.Tensor | None = None,
                        chunk_bytes: int = 1 << 30, causal_offset: int | None = None, window=None,
                        softcap: float | None = None):
    """Return (out, lse) in fp32 for query rows ``rows`` (all rows if None).

    q is (B, H, Sq, D); k (B, Hkv, Sk, D) and v (B, Hkv, Sk, Dv) with H a multiple of Hkv (grouped-query
    attention: query head h reads key/value head h // (H // Hkv); repeated here, in fp32 only).
    ``causal``: False, True / "top_left" (torch's is_causal) or "bottom_right" (see
    :func:`alignment_offset`); with ``causal`` set, ``causal_offset`` replaces the alignment's
    offset (the binding's raw argument: row r sees key c iff c <= r + offset).

    A row that sees no key (e.g. bottom-right with Sq > Sk) gets out = 0 and lse = +inf, the
    kernels' convention; with no keys at all (Sk = 0) every row is an empty sum, out = 0 and
    lse = -inf (the logsumexp of nothing, like torch's math SDPA).

    ``window``: (left, right) sliding window (:func:`visible_range`). ``softcap``: scores become
    softcap * tanh(scale * q.k / softcap) before the mask (Gemma-2).

    The mask is applied after scaling, so any finite scale (negative, zero, subnormal) gives
    softmax(scale * q.k) over the visible keys.
    NaN/inf inputs propagate as IEEE arithmetic does (note that the final matmul multiplies a
    masked key's 0 weight by its value row, so a NaN in v reaches rows that do not see that key).
    Computed in chunks of (batch*heads) to bound the memory of the score matrix.
    """
    b, h, sq, d = q.shape
    hkv, sk, dv = k.shape[1], k.shape[2], v.shape[3]
    if hkv != h:
        if hkv < 1 or h % hkv:
            raise ValueError(f"query has {h} heads and key/value {hkv}: H must be a multiple of Hkv")
        k, v = (t.float().repeat_interleave(h // hkv, dim=1) for t in (k, v))
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    rows = torch.arange(sq, device=q.device) if rows is None else rows.to(q.device)
    qf = q[:, :, rows].float().reshape(b * h, len(rows), d)
    kf = k.float().reshape(b * h, sk, d)
    vf = v.float().reshape(b * h, sk, dv)
    mask = no_key = None
    lo, hi = visible_range(causal, window, sq, sk)
    if hi is not None and causal_offset is not None and causal is not False:
        hi = causal_offset
    cols = torch.arange(sk, device=q.device)[None, :]
    if hi is not None:
        mask = cols > rows[:, None] + hi  # True = hidden
    if lo is not None:
        left = cols < rows[:, None] + lo
        mask = left if mask is None else mask | left
    if mask is not None and sk > 0:  # Sk = 0 is the empty sum below, not a masked row
        no_key = mask.all(dim=-1)
    out = torch.empty(b * h, len(rows), dv, device=q.device, dtype=torch.float32)
    lse = torch.empty(b * h, len(rows), device=q.device, dtype=torch.float32)
    per = max(1, chunk_bytes // max(1, len(rows) * sk * 4))
    for i in range(0, b * h, per):
        s = torch.bmm(qf[i:i + per], kf[i:i + per].transpose(1, 2)) * scale
        if softcap:
            s = torch.tanh(s / softcap) * softcap
        if mask is not None:
            s.masked_fill_(mask, float("-inf"))
        lse[i:i + per] = torch.logsumexp(s, dim=-1)
        out[i:i + per] = torch.bmm(torch.softmax(s, dim=-1), vf[i:i + per])
    if no_key is not None:  # softmax over no score is NaN: the convention instead
        out = torch.where(no_key[None, :, None], 0.0, out)
        lse = torch.where(no_key[None, :], float("inf"), lse)
    return out.reshape(b, h, len(rows), dv), lse.reshape(b, h, len(rows))


def random_qkv(batch, heads, seqlen_q, seqlen_k, head_dim, dtype, device="cuda", generator=None, heads_k=None,
               head_dim_v=None):
    """Fresh random inputs (never zeros: they hide unwritten outputs and bad indexing); k and v
    get ``heads_k`` heads (default: ``heads``), v ``head_dim_v`` columns (default: ``head_dim``)."""
    shape_q = (batch, heads, seqlen_q, head_dim)
    shape_kv = (batch, heads if heads_k is None else heads_k, seqlen_k, head_dim)
    shape_v = shape_kv[:3] + (head_dim if head_dim_v is None else head_dim_v,)
    q = torch.randn(shape_q, device=device, dtype=dtype, generator=generator)
    k = torch.randn(shape_kv, device=device, dtype=dtype, generator=generator)
    v = torch.randn(shape_v, device=device, dtype=dtype, generator=generator)
    return q, k, v
