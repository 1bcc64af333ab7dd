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
    head_dim_v: int | None = None  # V's (and the output's) head dim where it differs from head_dim

    def __str__(self) -> str:
        mask = "causal" if self.causal else "full"
        return f"{self.dtype}_{_dims(self.head_dim, self.head_dim_v)}_{mask}_q{self.seqlen_q}_k{self.seqlen_k}_bh{self.batch_heads}"

    @classmethod
    def parse(cls, text: str) -> "ProblemKey":
        try:
            dtype, d, mask, q, k, bh = text.split("_")
            if not d.startswith("d"):
                raise ValueError(d)
            d, _, dv = d[1:].partition("v")
            return cls(dtype, int(d), mask == "causal", int(q[1:]), int(k[1:]), int(bh[2:]), int(dv) if dv else None)
        except ValueError as exc:
            raise ValueError(f"malformed problem key {text!r}") from exc


def _dims(head_dim: int, head_dim_v: int | None) -> str:
    """"d128", or "d192v128" when V's head dim differs (keys and names of such problems)."""
    return f"d{head_dim}" if head_dim_v is None else f"d{head_dim}v{head_dim_v}"


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
    # V's (and the output's) head dim where it differs from Q/K's (e.g. 192/128); None = the same.
    # A value equal to head_dim is stored as None, so that both spellings share one key.
    head_dim_v: int | None = None

    def __post_init__(self):
        if self.head_dim_v == self.head_dim:
            object.__setattr__(self, "head_dim_v", None)

    @property
    def value_head_dim(self) -> int:
        return self.head_dim if self.head_dim_v is None else self.head_dim_v

    @property
    def key(self) -> ProblemKey:
        return ProblemKey(
            self.dtype,
            self.head_dim,
            self.causal,
            bucket(self.seqlen_q),
            bucket(self.seqlen_k),
            bucket(self.batch * self.heads),
            self.head_dim_v,
        )

    @property
    def flops(self) -> float:
        """2·B·H·Sq·Sk·(D + Dv) (4·B·H·Sq·Sk·D for one head dim), halved for causal (the
        convention of BASELINES.md)."""
        f = 2.0 * self.batch * self.heads * self.seqlen_q * self.seqlen_k * (self.head_dim + self.value_head_dim)
        return f / 2 if self.causal else f

    def __str__(self) -> str:
        mask = "causal" if self.causal else "full"
        layout = "" if self.aligned16 else " unaligned"
        dims = f"D{self.head_dim}" + ("" if self.head_dim_v is None else f" Dv{self.head_dim_v}")
        return f"{self.dtype} B{self.batch} H{self.heads} Sq{self.seqlen_q} Sk{self.seqlen_k} {dims} {mask}{layout}"
