"""Problems and the keys the tuning table and registry file them under."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

# The mask part of a key: "full" or "causal" (any masked variant: causal and/or a window), then
# "br" for a bottom-right alignment with Sq != Sk (where the alignments differ), "w<N>" for a
# window of N keys a row sees at most (bucketed), "sc" for a logit softcap, "g<G>" for G query heads
# of a GQA group packed into rows (gqa_row_packed), "gqa<R>" for R query heads per key/value head
# that the per-head kernels map (bucketed). E.g. "causalbrw4096", "causalbrg4", "causalgqa4".
_MASK = re.compile(r"(full|causal)(br)?(?:w(\d+))?(sc)?(?:g(\d+))?(?:gqa(\d+))?")


OPEN_SIDE = 1 << 30  # a window side without edge: beyond every sequence (the kernels' 32-bit range)


def mask_offsets(bottom_right: bool, window, seqlen_q: int, seqlen_k: int) -> tuple[int, int | None]:
    """(causal_offset, left_offset) of a masked problem: row r sees key c iff r + left_offset <=
    c <= r + causal_offset (left None: no left edge). ``window``: (left, right) as the kernel
    applies it (a causal call's right is 0), -1 unbounded, centred on the diagonal of the
    alignment; an open right side is OPEN_SIDE, which the binding clamps to the sequence."""
    align = seqlen_k - seqlen_q if bottom_right else 0
    if window is None:
        return align, None
    left, right = window
    return align + (right if right >= 0 else OPEN_SIDE), (None if left < 0 else align - left)


def gqa_key_range(heads: int, heads_k: int, seqlen_q: int, seqlen_k: int, masked: bool, bottom_right: bool,
                  window) -> tuple[int, int] | None:
    """Keys [begin, end) that a decoding call with grouped-query attention reads when each key/value
    head's group of query heads is packed into the rows of one problem (FlashAttention-3's PackGQA;
    here a stride view in the binding, fwd_pack_gqa): with one query row per head (Sq = 1), the G
    query heads of a group are G rows that see the same keys, so one tile holds them instead of one
    row and 63 of padding, each K/V head is read once instead of G times, and any mask becomes this
    key range of an unmasked problem. None where it does not apply: no group (H == Hkv), Sq > 1
    (rows of a group would see different keys under a mask; left to the per-head kernels), or a row
    that sees no key. ``bottom_right``/``window``: as :func:`mask_offsets` takes them."""
    if heads_k >= heads or seqlen_q != 1 or seqlen_k < 1:
        return None
    if not masked:
        return 0, seqlen_k
    causal_offset, left_offset = mask_offsets(bottom_right, window, 1, seqlen_k)
    begin = max(0, left_offset if left_offset is not None else 0)
    end = min(seqlen_k, causal_offset + 1)
    return (begin, end) if begin < end else None


def gqa_packed(problem: "Problem", heads_k: int) -> "tuple[Problem, int, int] | None":
    """(packed problem, key_begin, key_end) that dispatch runs for ``problem`` with ``heads_k``
    key/value heads (:func:`gqa_key_range`): B x Hkv heads of G = H / Hkv rows over the keys the
    row sees, unmasked (the mask is the key range); None where packing does not apply."""
    key_range = gqa_key_range(problem.heads, heads_k, problem.seqlen_q, problem.seqlen_k, problem.causal,
                              problem.bottom_right, problem.window)
    if key_range is None:
        return None
    begin, end = key_range
    packed = Problem(problem.dtype, problem.head_dim, False, problem.batch, heads_k, problem.heads // heads_k,
                     end - begin, problem.aligned16, problem.head_dim_v, softcap=problem.softcap)
    return packed, begin, end


# GQA row packing for Sq > 1 (the kernel packs; sm90 variants with pack_gqa = 1): below this many
# query rows a head's 64-row tiles hold padding, which packing the group's heads into the rows fills.
PACK_GQA_MAX_SEQLEN_Q = 63
PACK_GQA_MAX_GROUP = 64  # a group's heads fit the rows of one 64-row tile


def packed_row_slots(group: int) -> int:
    """Rows a query takes in a packed tile: ``group`` rounded up to a power of two (pack_gqa.cuh)."""
    return 1 << (group - 1).bit_length()


def gqa_row_packed(problem: "Problem", heads_k: int, min_rows: int = 2) -> "Problem | None":
    """The problem a GQA call with 1 < Sq < 64 dispatches as when the kernel packs each key/value
    head's G query heads into the rows of its tiles (FlashAttention-3's PackGQA, for any mask: each
    row keeps its query position): ``problem`` with ``group`` = G, where that gives fewer 64-row
    tiles than one head per tile (so each K/V head is read by fewer tiles). None otherwise (no
    group, Sq = 1 (attention()'s gqa_packed stride view; packed variable-length sequences, which
    have no such view, pass ``min_rows=1``), Sq >= 64 or a group wider than a tile)."""
    heads, sq = problem.heads, problem.seqlen_q
    if heads_k >= heads or heads % heads_k or problem.group != 1 or not min_rows <= sq <= PACK_GQA_MAX_SEQLEN_Q:
        return None
    group = heads // heads_k
    if group > PACK_GQA_MAX_GROUP:
        return None
    packed_tiles = heads_k * -(-sq * packed_row_slots(group) // 64)
    if packed_tiles >= heads * -(-sq // 64):
        return None
    return dataclasses.replace(problem, group=group, heads_kv=None)


def with_packed_rows(problem: "Problem", heads_k: int, runs, min_rows: int = 2) -> "Problem":
    """:func:`gqa_row_packed`'s problem where ``runs`` (the runtime's has_candidates) says a built
    variant runs it, else ``problem`` (the per-head kernels map query to K/V heads)."""
    packed = gqa_row_packed(problem, heads_k, min_rows)
    return packed if packed is not None and runs(packed) else problem


def dispatched_problem(problem: "Problem", heads_k: int, runs) -> "Problem":
    """The problem dispatch keys a call of ``problem`` with ``heads_k`` key/value heads under (what
    api._dispatch runs): one-query-row decoding with grouped heads as its packed problem
    (:func:`gqa_packed`), 2-63 query rows as the row-packed problem where ``runs`` (the runtime's
    has_candidates) says a packing variant is built (:func:`with_packed_rows`), any other problem
    with its key/value heads (heads_kv: the key's gqa<R>)."""
    problem = dataclasses.replace(problem, heads_kv=heads_k)
    packed = gqa_packed(problem, heads_k)
    return packed[0] if packed is not None else with_packed_rows(problem, heads_k, runs)


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
    # Run-time mask parameters that change which variant is fastest (a masked problem only):
    # bottom-right alignment with Sq != Sk (a row sees Sk - Sq more keys than top-left), the
    # window's span (bucketed keys a row sees at most; None: no window), a logit softcap.
    bottom_right: bool = False
    window: int | None = None
    softcap: bool = False
    # Query heads per key/value head packed into rows (a packing variant's problem; 1: unpacked).
    group: int = 1
    # Query heads per key/value head that the per-head kernels map (bucketed; 1: MHA or packed). Each
    # K/V head is read by that many query heads' tiles, so K/V traffic and L2 reuse differ from MHA's.
    kv_group: int = 1

    def __str__(self) -> str:
        mask = ("causal" if self.causal else "full") + ("br" if self.bottom_right else "") + \
            (f"w{self.window}" if self.window is not None else "") + ("sc" if self.softcap else "") + \
            (f"g{self.group}" if self.group > 1 else "") + (f"gqa{self.kv_group}" if self.kv_group > 1 else "")
        return f"{self.dtype}_{_dims(self.head_dim, self.head_dim_v)}_{mask}_q{self.seqlen_q}_k{self.seqlen_k}_bh{self.batch_heads}"

    @classmethod
    def parse(cls, text: str) -> "ProblemKey":
        try:
            dtype, d, mask, q, k, bh = text.split("_")
            if not d.startswith("d"):
                raise ValueError(d)
            d, _, dv = d[1:].partition("v")
            m = _MASK.fullmatch(mask)
            if m is None:
                raise ValueError(mask)
            base, br, window, softcap, group, kv_group = m.groups()
            if group and kv_group:
                raise ValueError(mask)  # a packed problem's group is its K/V mapping
            return cls(dtype, int(d), base == "causal", int(q[1:]), int(k[1:]), int(bh[2:]), int(dv) if dv else None,
                       bool(br), int(window) if window else None, bool(softcap), int(group) if group else 1,
                       int(kv_group) if kv_group else 1)
        except ValueError as exc:
            raise ValueError(f"malformed problem key {text!r}") from exc

    @property
    def causal_triangle(self) -> bool:
        """Is this a causal triangle: row r sees keys 0..r (top-left, or Sq = Sk), no window, no
        GQA group packed into rows?"""
        return self.causal and not self.bottom_right and self.window is None and self.group == 1

    @property
    def visible_keys(self) -> int:
        """Keys a query row of this key's shape sees at most (the bucketed sizes): all of them
        unmasked or bottom-right, at most Sq causal top-left, at most the window's span."""
        keys = self.seqlen_k if not self.causal or self.bottom_right else min(self.seqlen_q, self.seqlen_k)
        return keys if self.window is None else min(keys, self.window)


# The exact shape a table row records ("B4 H16 Sq4096 Sk4096", "B1 H28 Sq4096 Sk4096 Hkv4" with
# grouped-query heads the kernels map: shape_text): rows of one key measured on different shapes
# are never compared, and dispatch takes the measurement of the shape nearest the problem's
# (shape_distance).
_SHAPE = re.compile(r"B(\d+) H(\d+) Sq(\d+) Sk(\d+)(?: Hkv(\d+))?")


def shape_text(problem: "Problem") -> str:
    """The exact shape a tuning-table row records for ``problem``."""
    text = f"B{problem.batch} H{problem.heads} Sq{problem.seqlen_q} Sk{problem.seqlen_k}"
    return text + (f" Hkv{problem.heads_kv}" if problem.heads_kv is not None else "")


def parse_shape(text: str) -> tuple[int, int, int, int] | None:
    """(B, H, Sq, Sk) of a shape text, or None for a text of another form (a hand-edited row)."""
    m = _SHAPE.fullmatch(text)
    return tuple(map(int, m.groups()[:4])) if m else None


def shape_heads_kv(text: str) -> int | None:
    """The key/value heads a shape text names (None: as many as query heads, or another form)."""
    m = _SHAPE.fullmatch(text)
    return int(m.group(5)) if m and m.group(5) else None


def shape_distance(a: str, b: str) -> float:
    """How far apart two shapes of one key are: the sum of |log2| of their B*H, Sq and Sk ratios
    (what sets a grid's CTAs and each CTA's key loop; B4 H32 and B8 H16 are the same grid). A text
    of another form is infinitely far from any other text, and 0 from itself."""
    if a == b:
        return 0.0
    pa, pb = parse_shape(a), parse_shape(b)
    if pa is None or pb is None or 0 in pa or 0 in pb:
        return math.inf
    (ba, ha, qa, ka), (bb, hb, qb, kb) = pa, pb
    return sum(abs(math.log2(x) - math.log2(y)) for x, y in ((ba * ha, bb * hb), (qa, qb), (ka, kb)))


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
    # The mask's run-time parameters (a masked problem: causal True). bottom_right: FlashAttention's
    # alignment (also that of a window without causal); window: (left, right) as the kernel applies
    # it, -1 unbounded (attention() makes a causal call's right side 0); softcap: 0.0 off. The
    # runtime arguments they become: mask_arguments.
    bottom_right: bool = False
    window: tuple[int, int] | None = None
    softcap: float = 0.0
    # Grouped-query attention run packed (gqa_row_packed): ``heads`` query heads on heads // group
    # key/value heads, each group's query heads as rows of one tile (variants with pack_gqa = 1 only).
    # 1: not packed (a GQA problem may still have fewer K/V heads: heads_kv).
    group: int = 1
    # Key/value heads of an unpacked problem with grouped-query heads, which the per-head kernels map
    # (query head h reads K/V head h // (heads / heads_kv)); None: as many as ``heads`` (or packed).
    heads_kv: int | None = None

    @property
    def heads_k(self) -> int:
        """Key/value heads: of a packed problem heads / group, else heads_kv or ``heads``."""
        return self.heads // self.group if self.heads_kv is None else self.heads_kv

    def __post_init__(self):
        if self.group < 1 or self.heads % self.group:
            raise ValueError(f"group {self.group} must divide the {self.heads} query heads")
        if self.heads_kv == self.heads:
            object.__setattr__(self, "heads_kv", None)
        if self.heads_kv is not None:
            if self.heads_kv < 1 or self.heads % self.heads_kv:
                raise ValueError(f"{self.heads_kv} key/value heads must divide the {self.heads} query heads")
            if self.group != 1:
                raise ValueError("a packed problem (group > 1) maps its key/value heads by its group: no heads_kv")
        if self.head_dim_v == self.head_dim:
            object.__setattr__(self, "head_dim_v", None)
        if self.window is not None:
            object.__setattr__(self, "window", tuple(self.window))
            if not self.causal:
                raise ValueError("a windowed problem runs on the masked variants: causal must be True")
        if self.bottom_right and not self.causal:
            raise ValueError("bottom_right aligns a mask: causal must be True")

    @property
    def window_span(self) -> int | None:
        """Keys a row of a windowed problem sees at most (left + right + 1, an unbounded side
        counting Sk); None without a window."""
        if self.window is None:
            return None
        left, right = self.window
        return min(self.seqlen_k, (left if left >= 0 else self.seqlen_k) + (right if right >= 0 else self.seqlen_k) + 1)

    def mask_arguments(self) -> tuple[int, int | None]:
        """(causal_offset, left_offset) of this problem for Runtime.run (:func:`mask_offsets`)."""
        return mask_offsets(self.bottom_right, self.window, self.seqlen_q, self.seqlen_k)

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
            self.bottom_right and self.seqlen_q != self.seqlen_k,
            None if self.window is None else bucket(self.window_span),
            self.softcap > 0,
            self.group,
            1 if self.heads_kv is None else bucket(self.heads // self.heads_kv),
        )

    @property
    def grid_key(self) -> ProblemKey:
        """This problem's key at its grid's sizes rather than the buckets: B x H exact, Sq in 64-row
        query tiles (exact up to 64 rows), Sk and the window's span in 128-key tiles. What the
        heuristic's grid models count (registry.split_cost: waves of CTAs and key tiles a CTA walks),
        which change between two bucket tops: bf16 D64 decoding (B, 8 KV heads, 4 rows, 8192 keys)
        took clusters of 4 at B3 (96 CTAs, one wave) and clusters of 2 at B4, one key
        (benchmarks/NOTES.md, 2026-11-29 09:44-)."""
        def tiles(n: int, size: int) -> int:
            return -(-n // size) * size
        return dataclasses.replace(
            self.key,
            seqlen_q=self.seqlen_q if self.seqlen_q <= 64 else tiles(self.seqlen_q, 64),
            seqlen_k=tiles(self.seqlen_k, 128),
            batch_heads=self.batch * self.heads,
            window=None if self.window is None else tiles(self.window_span, 128),
        )

    @property
    def flops(self) -> float:
        """2·B·H·Sq·Sk·(D + Dv) (4·B·H·Sq·Sk·D for one head dim), halved for causal (the
        convention of BASELINES.md)."""
        f = 2.0 * self.batch * self.heads * self.seqlen_q * self.seqlen_k * (self.head_dim + self.value_head_dim)
        return f / 2 if self.causal else f

    def __str__(self) -> str:
        mask = "causal" if self.causal else "full"
        if self.bottom_right:
            mask += " bottom-right"
        if self.window is not None:
            mask += f" window {self.window}"
        if self.softcap:
            mask += f" softcap {self.softcap:g}"
        if self.group > 1:
            mask += f" GQA {self.heads}/{self.heads_k} packed"
        elif self.heads_kv is not None:
            mask += f" GQA {self.heads}/{self.heads_kv}"
        layout = "" if self.aligned16 else " unaligned"
        dims = f"D{self.head_dim}" + ("" if self.head_dim_v is None else f" Dv{self.head_dim_v}")
        return f"{self.dtype} B{self.batch} H{self.heads} Sq{self.seqlen_q} Sk{self.seqlen_k} {dims} {mask}{layout}"
