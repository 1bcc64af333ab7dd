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


def reference_attention(q, k, v, causal: bool, scale: float | None = None, rows: torch.Tensor | None = None,
                        chunk_bytes: int = 1 << 30):
    """Return (out, lse) in fp32 for query rows ``rows`` (all rows if None).

    Top-left aligned causal mask, like torch's is_causal. The mask is applied after scaling, so
    any finite scale (negative, zero, subnormal) gives softmax(scale * q.k) over the visible keys.
    NaN/inf inputs propagate as IEEE arithmetic does (note that the final matmul multiplies a
    masked key's 0 weight by its value row, so a NaN in v reaches rows that do not see that key).
    Computed in chunks of (batch*heads) to bound the memory of the score matrix.
    """
    b, h, sq, d = q.shape
    sk = k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    rows = torch.arange(sq, device=q.device) if rows is None else rows.to(q.device)
    qf = q[:, :, rows].float().reshape(b * h, len(rows), d)
    kf = k.float().reshape(b * h, sk, d)
    vf = v.float().reshape(b * h, sk, d)
    mask = None
    if causal:
        mask = torch.arange(sk, device=q.device)[None, :] > rows[:, None]  # True = hidden
    out = torch.empty(b * h, len(rows), d, device=q.device, dtype=torch.float32)
    lse = torch.empty(b * h, len(rows), device=q.device, dtype=torch.float32)
    per = max(1, chunk_bytes // max(1, len(rows) * sk * 4))
    for i in range(0, b * h, per):
        s = torch.bmm(qf[i:i + per], kf[i:i + per].transpose(1, 2)) * scale
        if mask is not None:
            s.masked_fill_(mask, float("-inf"))
        lse[i:i + per] = torch.logsumexp(s, dim=-1)
        out[i:i + per] = torch.bmm(torch.softmax(s, dim=-1), vf[i:i + per])
    return out.reshape(b, h, len(rows), d), lse.reshape(b, h, len(rows))


def random_qkv(batch, heads, seqlen_q, seqlen_k, head_dim, dtype, device="cuda", generator=None):
    """Fresh random inputs (never zeros: they hide unwritten outputs and bad indexing)."""
    shape_q = (batch, heads, seqlen_q, head_dim)
    shape_kv = (batch, heads, seqlen_k, head_dim)
    q = torch.randn(shape_q, device=device, dtype=dtype, generator=generator)
    k = torch.randn(shape_kv, device=device, dtype=dtype, generator=generator)
    v = torch.randn(shape_kv, device=device, dtype=dtype, generator=generator)
    return q, k, v
