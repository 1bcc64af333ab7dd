"""Problems and the keys the tuning table and registry file them under."""

from __future__ import annotations

from dataclasses import dataclass


def bucket(n: int) -> int:
    """Round a size up to a power of two: problems in one bucket share a tuned winner."""
    if n < 1:
        raise ValueError(f"size must be >= 1, got {n}")
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class ProblemKey:
    dtype: str
    head_dim: int
    causal: bool
    seqlen_q: int  # bucketed
    seqlen_k: int  # bucketed
    batch_heads: int  # bucketed batch * heads

    def __str__(self) -> str:
        mask = "causal" if self.causal else "full"
        return f"{self.dtype}_d{self.head_dim}_{mask}_q{self.seqlen_q}_k{self.seqlen_k}_bh{self.batch_heads}"

    @classmethod
    def parse(cls, text: str) -> "ProblemKey":
        try:
            dtype, d, mask, q, k, bh = text.split("_")
            return cls(dtype, int(d[1:]), mask == "causal", int(q[1:]), int(k[1:]), int(bh[2:]))
        except ValueError as exc:
            raise ValueError(f"malformed problem key {text!r}") from exc


@dataclass(frozen=True)
class Problem:
    dtype: str
    head_dim: int
    causal: bool
    batch: int
    heads: int
    seqlen_q: int
    seqlen_k: int
    # q, k, v start 16-byte aligned and the strides of their dimensions of extent > 1 are multiples
    # of 16 bytes (what vector and TMA copies need, KernelConfig.REQUIRES_ALIGNED16). Not part of
    # the key: tuning measures aligned inputs, and dispatch keeps its decisions per (key, aligned16).
    aligned16: bool = True

    @property
    def key(self) -> ProblemKey:
        return ProblemKey(
            self.dtype,
            self.head_dim,
            self.causal,
            bucket(self.seqlen_q),
            bucket(self.seqlen_k),
            bucket(self.batch * self.heads),
        )

    @property
    def flops(self) -> float:
        """4·B·H·Sq·Sk·D, halved for causal (the convention of BASELINES.md)."""
        f = 4.0 * self.batch * self.heads * self.seqlen_q * self.seqlen_k * self.head_dim
        return f / 2 if self.causal else f

    def __str__(self) -> str:
        mask = "causal" if self.causal else "full"
        layout = "" if self.aligned16 else " unaligned"
        return f"{self.dtype} B{self.batch} H{self.heads} Sq{self.seqlen_q} Sk{self.seqlen_k} D{self.head_dim} {mask}{layout}"
