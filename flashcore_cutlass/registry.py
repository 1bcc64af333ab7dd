"""Dispatch: which built variant runs a problem.

A variant is a candidate for a problem when its config has the problem's dtype and causal flag
(sliding windows run on the causal, i.e. masked, variants) and computes its head dims (its own
for Q/K and V, or multiples of 8 its family pads to it, V's may differ from Q/K's:
KernelConfig.computes_head_dim); every family handles any
seqlen >= 1, it was built for a target the device
runs (its arch and min_cc, as the extension reports them) and it can implement the call
(:meth:`KernelConfig.can_implement`: e.g. misaligned inputs skip the 16-byte-copy families).
A problem whose GQA group is packed into tile rows (``problem.group > 1``: attention() with 2-63
query rows per head where a packing variant is built, problem.gqa_row_packed) has only the packing
variants (``pack_gqa``) as candidates, and they no other problem.
Among the candidates:

1. **tuned** or **shipped**: a measured winner for ``problem.key``. The current rows are those of
   the user's tuning table measured in this exact environment against the source hash of the
   variant as built now, and those of the table shipped with the package
   (:mod:`flashcore_cutlass.shipped`) measured on the same GPU model and SM count against the
   same source hash (which covers nvcc, its flags and CUTLASS), on any torch release. Each row
   records the exact shape it was measured on; of all measured shapes the one nearest the
   problem's (:func:`~flashcore_cutlass.problem.shape_distance`) serves it, of two equally near
   the user's, and that shape's fastest row wins (:func:`~flashcore_cutlass.table.pick_nearest`).
   So tuning one shape of a key takes over the shapes nearer it than any other measured shape,
   never the shapes measured themselves (few-CTA problems change winner inside a key: decoding
   over 8k keys, a cluster of 4 wins at B6 and runs 1.6x slower than clusters of 2 at B8);
2. **borrowed**: otherwise, the winner the shipped table holds for the key (and the shape nearest
   the problem's) from the nearest
   other GPU of this architecture, of a variant as built now
   (:meth:`ShippedTable.borrowed <flashcore_cutlass.shipped.ShippedTable.borrowed>`: e.g. an
   H100, whose table was retired when the kernels changed, takes the H200's winner; winners
   measured on one of these two boards took
   1.006-1.008x the fastest time on the other, the flat rules below 1.019-1.023x, over the keys
   whose tuning run timed both: benchmarks/NOTES.md, 2026-11-28 12:28-);
3. **heuristic** otherwise (no environment, no current measurement, or a tuning table
   that cannot be read: corrupt and not movable, unusable path; one :class:`TableWarning`
   per process says so, dispatch never raises over either table):
   the candidate with the smallest :func:`heuristic_rank`, i.e.

   - the family highest on the roadmap ladder (``ladder_step``);
   - then the smallest V head dim (a variant with a V head dim of its own, e.g. sm90's 192/128,
     over one that pads V to Q's);
   - then key-split warpgroups where :func:`prefers_key_split` (two consumer warpgroups sharing
     a 64-row tile's key tiles: where the 64-row query tiles fit the SMs once, split-KV does not
     pay and a row sees >= 8 tiles of 128 keys; benchmarks/NOTES.md, 2026-11-27 10:25-; for a
     causal triangle whose rows see >= 32 key tiles, or at head dims <= 64 any causal triangle,
     also where the tiles fit the SMs twice: ``CAUSAL_LONG_MIN_KEY_TILES``,
     ``KEY_SPLIT_TWICE_MAX_HEAD_DIM``), else one consumer warpgroup per 64 rows;
   - then, where the split model below chose a split, each candidate's predicted chain for its own
     split (so a split the model rules out never ranks first for its 64-row tile alone);
   - then block_m = 64 when seqlen_q <= 64 (a 128-row tile would be mostly padding) or when
     split-KV pays (below; the split-KV tiles are 64-row), else block_m = 128 (the nearest built
     size; of 64 and 192, equally near, 64), unless the family prefers another for the problem;
   - then one CTA per SM (two one-WG CTAs per SM win only the shortest causal grid cells, by
     measurement: benchmarks/NOTES.md, 2026-11-26 20:02-), unless the family prefers another
     block_m or two CTAs per SM for the problem (below: ``heuristic_tiles``);
   - then, where :func:`preferred_splits` says split-KV pays (a few-CTA problem whose rows see many
     keys), the candidate whose split the model of :func:`split_cost` predicts the shortest chain
     for: one CTA per query tile, a cluster of 2, 4 or 8 CTAs per tile, or 2-16 CTAs combining
     through global memory where a query tile holds at most ``SPLIT_KV_GLOBAL_MAX_ROWS`` rows
     (decoding); of two equally short, the fewer splits. The model and the key-split rule count
     the problem's grid sizes (:attr:`Problem.grid_key <flashcore_cutlass.problem.Problem.grid_key>`:
     B x H exact, keys in 128-key tiles), not the key's buckets, since a grid's waves change
     between two bucket tops. Over the 134 keys the H200's tuning runs timed by 2026-11-29 06:45,
     the heuristic's pick took 1.015x the fastest time in geometric mean with this model, 1.047x
     (at worst 2.5x) with the half-SM rule before it (benchmarks/experiments/heuristic_audit.py;
     benchmarks/NOTES.md, 2026-11-29 06:37-); over the 180 timed by 2026-11-29 09:50, 1.011x with
     the grid sizes, 1.019x with the buckets, and at 13 decoding shapes held out of that fit
     1.019x against the model before's 1.089x (2026-11-29 09:44-). Elsewhere one CTA per query
     tile, or a cluster of 2 for a causal triangle whose rows see >= 32 key tiles while its 64-row
     tiles fit the SMs once;
   - then block_n = 64 (of two equally far from it, the wider), then stages = 2, then warps = 4
     (the middle of each axis), unless the family names other sizes for the problem
     (``KernelConfig.heuristic_tiles``, each with its measurement; :func:`family_preferences`: a
     family's ``block_m`` and ``ctas_per_sm`` apply only where the 64-row query tiles outnumber
     the SMs and no few-CTA rule does; e.g. sm90 for D64 without a mask: the 192-row tile where
     Sq > 512 and its tiles fill whole waves (where Sq > 256 for head dims whose rows are no whole
     32-byte sectors, D40 and D56), else two one-warpgroup CTAs per SM);
   - then lean = 0 (the plain mainloop: the lean one wins only some tiles, by measurement);
   - then the name, so the choice is deterministic.

   Axes a family lacks tie (the ladder step already separates families).
4. No candidate at all raises :class:`MissingVariantError`, naming the build command.

Decisions are cached per :class:`ProblemKey` where its rows hold one measured shape (a dict hit),
per exact shape where they hold several or none (the heuristic's rank itself once per key and
grid), and the shipped
file is read once per process, on the first decision that needs it; set
``FLASHCORE_PRINT_DISPATCH=1`` to print each new decision to stderr.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import flashcore_codegen  # noqa: F401  registers the kernel families, so config_from_name knows them
from flashcore_codegen import KernelConfig, config_from_name

from .eligibility import Target, cannot_implement_message, computes, family_build_command, runs_on, wrong_device_message
from .env import Environment, gpu_label
from .problem import Problem, ProblemKey, packed_row_slots, shape_text
from .shipped import ShippedTable, default_table
from .table import Row, TableError, TableWarning, TuningTable, pick_nearest

# Preferred value of each tile axis (other than block_m, which depends on seqlen_q).
# (key_split_wgs, block_m, then ctas_per_sm = 1, then splits rank first: heuristic_rank; the order
# is the ranking's.)
PREFERRED_TILES = {"block_n": 64, "stages": 2, "warps": 4, "lean": 0}
SMALL_SEQLEN_Q = 64
# Per-shape decisions kept (keys with rows of several measured shapes, or none); past it they start over.
MAX_SHAPE_DECISIONS = 65536
# Split-KV (several CTAs share a query tile's key tiles, then combine): a model of a few-CTA grid's
# time in 128-key tiles (split_cost). Each CTA walks ceil(K / splits) key tiles, the grid runs in
# waves of what fits the SMs at once, and a split adds its combine. Fitted on the tuned keys
# (benchmarks/NOTES.md, 2026-11-29 06:37-): the H100's long-key shapes of 64-row tiles (clusters of
# 8 at (1, 8, 64, 8192), of 4 at (1, 8, 128, 4096), of 2 at (1, 32, 64, 4096) and (4, 8, 64, 2048),
# none at (1, 8, 512, 512) or (1, 8, 1024, 1024); 2026-11-26 21:48- and 23:12-) and 13 H200 decoding
# keys of 1-7 rows per tile (2026-11-28 15:24 and 2026-11-29 06:45 tuning tables): e.g. 8 query
# tiles over 16k-128k keys took 16 CTAs a tile through global memory, 9-14 % ahead of 8; 16 tiles
# over 32k keys 8 (16: +4.6 %); 64 tiles over 8k keys clusters of 2 (8 through global memory:
# +45 %, no split: +69 %). Over every key the H200's tuning runs timed (134), the heuristic's pick
# took 1.015x the fastest time in geometric mean with the model, 1.047x with the rule before it
# (clusters within half the SMs, never 16 splits; at worst 2.5x), and it picked the winner at all 9
# held-out decoding shapes of D64, D128 and D256 (the rule before: 7; benchmarks/experiments/
# heuristic_audit.py, benchmarks/NOTES.md 2026-11-29 06:37-).
SPLIT_KV_CLUSTER_SIZES = (2, 4, 8)  # portable cluster sizes
SPLIT_KV_GLOBAL_SIZES = (2, 4, 8, 16)  # through global memory: any count (no gang launch)
SPLIT_KV_MIN_KEY_TILES = 2  # 128-key tiles each CTA of a split keeps at least
# A cluster's launch and combine cost about two 128-key tiles (H100: ~1.65 us over one CTA); the
# global combine (each CTA's partial O through L2, the last one to finish combines them) about 1.5
# plus a quarter tile per split (H200, from equal chains: at (1, 8, 2 rows, 4096 keys) 8 CTAs through
# global memory 1.9 us behind the cluster of 8 and 16 of them 1.8 us; at (1, 8, 4, 8192) 16 of them
# 1.2 us ahead of the cluster of 8, whose chain is 4 tiles longer).
SPLIT_KV_CLUSTER_COST_TILES = 2.0
SPLIT_KV_GLOBAL_COST_TILES = 1.5
SPLIT_KV_GLOBAL_COST_TILES_PER_SPLIT = 0.25
# Clusters of 4 or 8 CTAs fit only part of the SMs at once (whole clusters per GPC of 16-18 SMs).
# Clusters of 4 (H200): 28 (112 CTAs) ran as one wave, 14 % ahead of 8 CTAs a tile through global
# memory at (7, 4, 7 rows, 8192) (benchmarks/NOTES.md, 2026-11-29 09:44-), 32 (128 CTAs) did not,
# 108.5 us at (4, 8, 4, 16384) against 74.5 for 64 CTAs in clusters of 2. Clusters of 8: three
# quarters, not measured closer.
SPLIT_KV_WIDE_CLUSTER = 4
SPLIT_KV_WIDE_CLUSTER_FIT = {4: 0.85, 8: 0.75}  # fraction of the SMs, per cluster size
# Clusters of 8 walk their key tiles about 10 % slower than as many CTAs without a cluster (H200, 8
# query tiles of 4 rows, 8 CTAs each: through global memory 7 %, 17 % and 19 % ahead of the cluster of
# 8 over 16k, 32k and 64k keys, though 5 % behind over 128k and 2-16 % behind over 4k-8k, where the
# combine's cost decides). Clusters of 4 do not: in one wave they beat 8 CTAs through global memory
# by 5-18 % where the model with the penalty ranked them behind (bf16 D128 decoding over 8k keys, 8
# KV heads x 4 rows at B3 and 4 KV heads x 7 rows at B5 / B6; benchmarks/NOTES.md 2026-11-29 09:44-:
# the heuristic audit 1.015x -> 1.011x over 180 keys).
SPLIT_KV_SLOW_CLUSTER = 8
SPLIT_KV_SLOW_CLUSTER_TILE_COST = 1.1
# Splits only while the split grid stays within two waves of what fits at once: past that a grid
# fills the SMs without them, and the model's wave rounding would split large problems for their
# tail (H200: clusters of 8 at 256 CTAs 60 % behind clusters of 2 at 64, (4, 8, 64, 2048)).
SPLIT_KV_MAX_WAVES = 2
# Only query tiles of at most this many rows (a packed GQA decoding problem) combine through
# global memory: with whole 64-row tiles the last CTA's serial combine lost by 35-45 % ((1, 8, 64,
# 8192); benchmarks/NOTES.md, 2026-11-27 02:22-, calls 3 and 6).
SPLIT_KV_GLOBAL_MAX_ROWS = 8
# SM count assumed where dispatch has no environment (CPU tools): the H100 SXM's.
DEFAULT_SM_COUNT = 132
# Key-split warpgroups (two consumer warpgroups sharing a 64-row tile's key tiles, key_split.cuh)
# where the 64-row query tiles fit the SMs once, split-KV does not pay, and a row sees at least 8
# tiles of 128 keys: the tuned winner at every such key measured (benchmarks/NOTES.md, 2026-11-27
# 10:25-: D64 (1, 8, 1024) 8 % over one warpgroup non-causal and 1.45x causal, D128 causal 1.40x);
# not at the seed's 4 key tiles (2 % behind), nor where the tiles fill the SMs twice ((1, 16, 1024):
# tied; D128 causal (1, 8, 2048): the ping-pong 128-row tile 8 % ahead). At six untuned keys (same
# notes, call 8; tuner us) the rule's pick won four (fp16 D64 causal (1, 4, 2048) 13.7 against the
# 128-row tile the rule before picked, 24.9-25.5; non-causal (1, 4, 2048) 14.7 against 16.6, (1, 2,
# 4096) 25.8 against 30.1; bf16 D128 causal (1, 4, 2048) 19.6 against 29.4-32.4) and was 2 % / 17 %
# behind split-KV clusters of 2 at causal (1, 2, 4096) / (1, 1, 8192) (23.6 / 42.5 against 23.1 /
# 36.2; the 128-row tile: 43.1 / 79.5).
KEY_SPLIT_MIN_KEY_TILES = 8
# At head dims up to 64 a causal triangle's key-split tiles pay while the 64-row tiles fit the SMs
# twice, from 8 key tiles a row on (not only from CAUSAL_LONG_MIN_KEY_TILES): the tuned winner at
# (1, 8, 2048) and (1, 16, 1024), 13-14 % and 8-10 % ahead of the 128-row tile the flat rule picked
# (H200, bf16 and fp16; 2026-11-28 15:24 tuning table; H100: (1, 8, 2048) 22.8 / 23.1 against
# 24.6 / 25.0 us, (1, 16, 1024) tied). At D128 the 128-row ping-pong tile stays ahead there
# ((1, 8, 2048): 30.8 against 33.6 us, H100).
KEY_SPLIT_TWICE_MAX_HEAD_DIM = 64
# One sequence's causal prefill with long keys (a causal triangle: top-left, no window, no packed
# group). Its query tiles' key loops run from 1 to all of the row's tiles, so the grid's time is
# its longest CTAs' chain rather than its total work, and halving that chain pays where the flat
# rules above would not: clusters of 2 CTAs a query tile while the 64-row tiles fit the SMs once,
# key-split warpgroups while they fit twice, from 32 tiles of 128 keys a row on. Measured (tuner
# us, H100, benchmarks/NOTES.md 2026-11-27 12:00-, call 2; fp16 D64 / bf16 D128): (1, 1, 4096) kv2
# 18.3 / 23.2 against ks2 23.0 / 34.2 (the flat rules' pick); (1, 1, 8192) kv2 35.9 / 47.3 against
# 42.4 / 67.8; (1, 2, 4096) kv2 23.1 / ks2 23.6 (fp16: a tie); (1, 1, 16384) ks2 87.0 / 137.0 and
# (1, 2, 8192) ks2 47.3 / 71.2 against the 128-row tile the flat rules picked, 154.5 / 194.7 and
# 80.6 / 100.9; (1, 4, 4096) ks2 35.4 / 52.9 against 42.9 / 52.2 (the ping-pong 128-row tile).
# Below 32 key tiles the flat rules stand: (1, 4, 2048) ks2 13.7 against kv2 19.3; bf16 D128
# (1, 8, 2048) the ping-pong 128-row tile 30.8 against ks2 33.6.
CAUSAL_LONG_MIN_KEY_TILES = 32


def long_causal(key: ProblemKey) -> bool:
    """A causal triangle whose rows see at least CAUSAL_LONG_MIN_KEY_TILES tiles of 128 keys."""
    return key.causal_triangle and key.visible_keys // 128 >= CAUSAL_LONG_MIN_KEY_TILES


def query_tiles_of(key: ProblemKey) -> int:
    """64-row query tiles of ``key``'s problem: a head's ceil(Sq / 64), or with a GQA group packed
    into rows (key.group > 1) a key/value head's ceil(Sq * Gp / 64)."""
    if key.group > 1:
        return max(1, key.batch_heads // key.group) * -(-key.seqlen_q * packed_row_slots(key.group) // 64)
    return key.batch_heads * -(-key.seqlen_q // 64)


def prefers_key_split(key: ProblemKey, splits: int, sm_count: int = DEFAULT_SM_COUNT) -> bool:
    """Does the heuristic prefer key-split warpgroups for ``key`` (``splits``: preferred_splits)?
    Where the 64-row query tiles fit the SMs once, or twice for a long causal triangle or a
    causal triangle of head dim <= KEY_SPLIT_TWICE_MAX_HEAD_DIM."""
    if splits != 1 or key.group != 1 or key.visible_keys // 128 < KEY_SPLIT_MIN_KEY_TILES:
        return False
    twice = long_causal(key) or (key.causal_triangle and key.head_dim <= KEY_SPLIT_TWICE_MAX_HEAD_DIM)
    return query_tiles_of(key) <= (2 * sm_count if twice else sm_count)


def rows_per_tile(key: ProblemKey) -> int:
    """Rows of a 64-row query tile that hold queries (at most): Sq, or G per query when packed."""
    return min(64, key.seqlen_q * key.group)


def split_cost(key: ProblemKey, splits: int, combine: int, sm_count: int = DEFAULT_SM_COUNT) -> float:
    """The model's time of ``key``'s grid with ``splits`` CTAs per 64-row query tile (``combine``:
    1 through global memory, 0 through a cluster), in 128-key tiles: waves of the SMs times the key
    tiles a CTA walks, plus the split's combine (the constants above). ``inf`` where the split is
    not a fit: fewer than SPLIT_KV_MIN_KEY_TILES key tiles a CTA, more than SPLIT_KV_MAX_WAVES
    waves, a global combine of query tiles with more than SPLIT_KV_GLOBAL_MAX_ROWS rows, a cluster
    larger than the portable size."""
    query_tiles = query_tiles_of(key)
    key_tiles = -(-key.visible_keys // 128)
    wide_cluster = splits >= SPLIT_KV_WIDE_CLUSTER and not combine
    fit = max(1, int(sm_count * SPLIT_KV_WIDE_CLUSTER_FIT[splits]) if wide_cluster else sm_count)  # CTAs at once
    if splits > 1:
        if (key_tiles // splits < SPLIT_KV_MIN_KEY_TILES
                or query_tiles * splits > SPLIT_KV_MAX_WAVES * fit
                or (combine and rows_per_tile(key) > SPLIT_KV_GLOBAL_MAX_ROWS)
                or (not combine and splits not in SPLIT_KV_CLUSTER_SIZES)):
            return float("inf")
    waves = -(-query_tiles * splits // fit)
    slow_cluster = splits >= SPLIT_KV_SLOW_CLUSTER and not combine
    chain = waves * -(-key_tiles // splits) * (SPLIT_KV_SLOW_CLUSTER_TILE_COST if slow_cluster else 1.0)
    if splits == 1:
        combine_cost = 0.0
    elif combine:
        combine_cost = SPLIT_KV_GLOBAL_COST_TILES + SPLIT_KV_GLOBAL_COST_TILES_PER_SPLIT * splits
    else:
        combine_cost = SPLIT_KV_CLUSTER_COST_TILES
    return chain + combine_cost


def _model_splits(key: ProblemKey, sm_count: int) -> int:
    """The split the model predicts fastest for ``key`` over every size and combine (ties: fewer)."""
    options = [(split_cost(key, 1, 0, sm_count), 1)]
    options += [(split_cost(key, s, 0, sm_count), s) for s in SPLIT_KV_CLUSTER_SIZES]
    options += [(split_cost(key, s, 1, sm_count), s) for s in SPLIT_KV_GLOBAL_SIZES]
    return min(options)[1]


def preferred_splits(key: ProblemKey, sm_count: int = DEFAULT_SM_COUNT) -> int:
    """CTAs per query tile the heuristic prefers for ``key`` (1: no split-KV): the split
    :func:`split_cost` predicts fastest, counting the keys a row sees (ProblemKey.visible_keys: all
    of them unmasked or bottom-right, at most Sq causal top-left, at most the window's span). A
    long causal triangle (long_causal) the model leaves unsplit takes clusters of 2 while its 64-row
    query tiles fit the SMs once (its rows' chains differ, which the model does not see)."""
    return _split_preference(key, sm_count)[0]


def _split_preference(key: ProblemKey, sm_count: int) -> tuple[int, bool]:
    """(preferred_splits, whether the model chose that split: then candidates rank by split_cost)."""
    best = _model_splits(key, sm_count)
    if best == 1 and long_causal(key) and query_tiles_of(key) <= sm_count:
        return 2, False
    return best, best > 1

# One warning per process about an unreadable table: dispatch runs per new shape, and the
# cause (and its fix) is the same each time.
_table_warning_issued = False


def _value_dim(problem) -> str:
    return "" if problem.head_dim_v is None else f", value head_dim {problem.head_dim_v}"


class MissingVariantError(RuntimeError):
    def __init__(self, problem: Problem, command: str):
        super().__init__(
            f"no built flashcore variant computes {problem} (dtype {problem.dtype}, head_dim "
            f"{problem.head_dim}{_value_dim(problem)}, {'causal' if problem.causal else 'non-causal'}); "
            f"build one with: {command}"
        )
        self.problem = problem
        self.command = command


class NoRunnableVariantError(MissingVariantError):
    """Variants compute the problem, but none was built for this device."""

    def __init__(self, problem: Problem, message: str):
        RuntimeError.__init__(self, message)
        self.problem, self.command = problem, None


class UnsupportedInputError(MissingVariantError, ValueError):
    """Variants compute the problem and run here, but none can run these inputs (e.g. misaligned)."""

    def __init__(self, problem: Problem, message: str):
        RuntimeError.__init__(self, message)
        self.problem, self.command = problem, None


@dataclass(frozen=True)
class Choice:
    variant: str
    reason: str  # "tuned", "shipped", "borrowed" or "heuristic"
    measured_on: str = ""  # a borrowed row's GPU, e.g. "NVIDIA H200 (132 SMs)"
    # The exact shape the row was measured on (tuned, shipped, borrowed), e.g. "B8 H32 Sq4 Sk8192":
    # said, not compared (a choice is the variant and why).
    shape: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = f"{self.reason} from {self.measured_on}" if self.measured_on else self.reason
        return f"{text}, measured on {self.shape}" if self.shape else text


@dataclass(frozen=True)
class _KeyRows:
    """What dispatch knows of one key (and alignment): the current rows that may serve it, per
    table in order of precedence ((reason, rows): the user's and the shipped one's, or only the
    nearest other GPU's where neither has a row); none: the heuristic serves it."""
    tables: tuple[tuple[str, tuple[Row, ...]], ...] = ()
    # The choice for every shape of the key where its rows hold exactly one measured shape (None:
    # several, or none; choose per shape); computed once, choose() reads it on every call.
    single: Choice | None = field(init=False, compare=False)

    def __post_init__(self):
        one = len({r.shape for _, rows in self.tables for r in rows}) == 1
        object.__setattr__(self, "single", self.choice(None) if one else None)

    def choice(self, shape: str | None) -> Choice | None:
        """The choice for a problem of ``shape``: the winner of the measured shape nearest it
        (:func:`pick_nearest`; of two equally near, the user's); None without rows."""
        found = pick_nearest((rows for _, rows in self.tables), shape)
        if found is None:
            return None
        reason, row = self.tables[found[0]][0], found[1]
        lender = gpu_label(row.gpu_name, row.sm_count) if reason == "borrowed" else ""
        return Choice(row.variant, reason, lender, row.shape)


def build_command(problem: Problem | ProblemKey) -> str:
    """The CLI command that builds variants able to run ``problem`` (the curated set of every
    family; e.g. head dim 80, or Q/K 192 with V 128, builds the padding families' larger one)."""
    return family_build_command(problem)


# Of two tile sizes equally far from the preferred one: the wider key tile, the narrower query tile
# (heuristic_rank says why).
_TIES_TO = {"block_n": 1, "block_m": -1}


def _distance(value: int, want: int, ties_to: int = 0) -> float:
    """How far a tile size is from the preferred one; of two sizes equally far, the larger ranks
    first with ``ties_to`` = 1 (below the preferred one counts half a step more), the smaller with
    -1 (above it does)."""
    return abs(value - want) + (0.5 if (ties_to > 0 and value < want) or (ties_to < 0 and value > want) else 0.0)


def family_preferences(config: KernelConfig, key: ProblemKey, few_ctas_rule: bool,
                       sm_count: int = DEFAULT_SM_COUNT, grid: ProblemKey | None = None) -> dict[str, int]:
    """The tile sizes ``config``'s family prefers for ``key`` (KernelConfig.heuristic_tiles). A
    family's ``block_m`` and ``ctas_per_sm`` hold only for problems whose 64-row query tiles
    (counted at ``grid``'s sizes: Problem.grid_key; default the key's) outnumber the SMs and where
    no few-CTA rule (split-KV, key split) applies: those rules pick 64-row tiles, and with fewer
    tiles a second CTA per SM has nothing to run beside the first."""
    preferred = dict(config.heuristic_tiles(key, sm_count, grid))
    if few_ctas_rule or query_tiles_of(grid or key) <= sm_count:
        preferred.pop("block_m", None)
        preferred.pop("ctas_per_sm", None)
    return preferred


def heuristic_rank(config: KernelConfig, problem: Problem | ProblemKey, sm_count: int = DEFAULT_SM_COUNT) -> tuple:
    """Sort key of a candidate for ``problem``: smaller is better (see the module docstring).

    The families' tile preferences read the problem's key (bucketed sizes); the few-CTA models
    (split-KV, key-split warpgroups) read its grid sizes (Problem.grid_key), so the rank is the
    same for every problem of one (key, grid_key), which is what dispatch's cache assumes.
    """
    key = problem.key if isinstance(problem, Problem) else problem
    grid = problem.grid_key if isinstance(problem, Problem) else problem
    # Where the model splits, candidates rank by the chain it predicts for their own split and
    # combine (so a size not built falls to the next best built one, e.g. 8 CTAs through global
    # memory rather than a cluster of 4 at 128 CTAs); otherwise by distance to ``splits``.
    splits, by_model = _split_preference(grid, sm_count)
    key_split = prefers_key_split(grid, splits, sm_count)
    # Key-split warpgroups first: where they pay, any built one (all are 64-row tiles) ranks before
    # every one-warpgroup tile; elsewhere every one-warpgroup tile ranks before them. Where the model
    # chose a split, its predicted chain comes next, before the tile sizes: a split the model rules
    # out (more CTAs than two waves of what fits) must not rank first for its 64-row tile alone
    # (D256 decoding (8, 8 KV heads, 2 rows, 8k keys): a cluster of 4 at 1.23x the unsplit 128x64
    # tile when block_m came first; benchmarks/NOTES.md, 2026-11-29 09:44-).
    preferred = {"key_split_wgs": 2 if key_split else 1,
                 **({"splits": splits} if by_model else {}),
                 "block_m": 64 if key.seqlen_q <= SMALL_SEQLEN_Q or splits > 1 else 128,
                 "ctas_per_sm": 1, **({} if by_model else {"splits": splits, "combine": 0}),
                 **PREFERRED_TILES,
                 **family_preferences(config, key, splits > 1 or key_split, sm_count, grid)}
    # Distance rather than equality: an exact match wins, otherwise the nearest size; of two key
    # tiles equally near, the wider (a D256 128x80 tile beats 128x48 by 13-37 % from S = 2k on,
    # benchmarks/NOTES.md 2026-11-26 call 5); of two query tiles equally near, the narrower (where
    # no 128-row tile is built, 64 rows rather than 192: twice the CTAs; the seed shape (1, 8, 512,
    # 64) took 5.8 us on the 64-row tile and 10.5 on the 192-row one the name picked before,
    # benchmarks/NOTES.md 2026-11-27 10:25-). A missing axis is distance 0 for every config of
    # that family, i.e. a tie.
    distances = tuple(
        (split_cost(grid, getattr(config, "splits", 1), getattr(config, "combine", 0), sm_count),
         getattr(config, "splits", 1))  # of two equally short chains, the fewer splits
        if by_model and axis == "splits" else _distance(getattr(config, axis, want), want, _TIES_TO.get(axis, 0))
        for axis, want in preferred.items())
    # The least V padding first: a variant with a V head dim of its own (e.g. 192/128) does a third
    # less PV work than its family's D192 variant, which pads V to 192.
    return (-config.ladder_step, config.v_head_dim, *distances, config.name)


class Registry:
    def __init__(
        self,
        variants: Mapping[str, str],
        table: TuningTable | None = None,
        env: Environment | None = None,
        capability: tuple[int, int] | None = None,
        targets: Mapping[str, tuple[str, int]] | None = None,
        shipped: ShippedTable | None = None,
    ):
        """``variants``: built variant name -> source hash of what was built. ``shipped``: the
        table to fall back on before the heuristic (default: the package's, read on first need)."""
        self.hashes = dict(variants)
        self.configs = {name: config_from_name(name) for name in self.hashes}
        # ``capability``: (major, minor) of the device dispatch serves; None (CPU tools) runs
        # every variant. ``targets``: name -> (arch, min_cc) as built (default: the family's).
        self.capability = capability
        self.targets = {n: Target(*(targets or {}).get(n, Target.of(c))) for n, c in self.configs.items()}
        self.table = table
        self.env = env
        self._shipped = shipped
        self._cache: dict[tuple[ProblemKey, bool], _KeyRows] = {}  # per (key, aligned16)
        # Per (key, aligned16, shape), for keys whose rows hold several measured shapes or none.
        self._by_shape: dict[tuple[ProblemKey, bool, str], Choice] = {}
        # The heuristic's picks per (key, aligned16, Problem.grid_key).
        self._by_grid: dict[tuple[ProblemKey, bool, ProblemKey], Choice] = {}

    def computing(self, problem: Problem | ProblemKey) -> list[str]:
        """Built variants whose config computes ``problem`` (:func:`eligibility.computes`)."""
        return [name for name, c in self.configs.items() if computes(c, problem)]

    def candidates(self, problem: Problem | ProblemKey) -> list[str]:
        """Built variants that compute ``problem``, run on this device and can implement it,
        best heuristic rank first."""
        names = [
            name
            for name in self.computing(problem)
            if runs_on(self.targets[name], self.capability) and self.configs[name].can_implement(problem) is None
        ]
        sm_count = self.env.sm_count if self.env is not None else DEFAULT_SM_COUNT
        return sorted(names, key=lambda n: heuristic_rank(self.configs[n], problem, sm_count))

    def choose(self, problem: Problem) -> Choice:
        key = problem.key
        slot = (key, getattr(problem, "aligned16", True))
        known = self._cache.get(slot)
        if known is None:
            known = self._cache[slot] = self._decide(problem, key)
            if known.single is not None:
                self._say(problem, key, known.single)
        if known.single is not None:
            return known.single
        # Rows of several shapes: the nearest measured shape's winner; no rows: the heuristic's pick
        # for the problem's grid sizes. Decided once per shape.
        shape = shape_text(problem)
        choice = self._by_shape.get((*slot, shape))
        if choice is None:
            if len(self._by_shape) >= MAX_SHAPE_DECISIONS:  # decoding makes a new shape a step
                self._by_shape.clear()
                self._by_grid.clear()
            choice = known.choice(shape) or self._heuristic(problem, slot)
            self._by_shape[(*slot, shape)] = choice
            self._say(problem, key, choice)
        return choice

    def _heuristic(self, problem: Problem, slot: tuple[ProblemKey, bool]) -> Choice:
        """The heuristic's pick for ``problem``: the same for every problem of one key and grid
        (heuristic_rank), ranked once per grid (a growing KV cache changes it every 128 keys)."""
        grid = (*slot, problem.grid_key)
        choice = self._by_grid.get(grid)
        if choice is None:
            choice = self._by_grid[grid] = Choice(self.candidates(problem)[0], "heuristic")
        return choice

    @staticmethod
    def _say(problem: Problem, key: ProblemKey, choice: Choice) -> None:
        if os.environ.get("FLASHCORE_PRINT_DISPATCH") == "1":
            print(f"flashcore dispatch: {problem} [{key}] -> {choice.variant} ({choice})", file=sys.stderr)

    def no_candidate_error(self, problem: Problem) -> MissingVariantError:
        """Why no built variant may run ``problem``: none computes it (build one), none runs on
        this device (which GPU, which build), or none takes these inputs (which tensors)."""
        computing = self.computing(problem)
        if not computing:
            return MissingVariantError(problem, build_command(problem))
        runnable = [n for n in computing if runs_on(self.targets[n], self.capability)]
        if not runnable:
            message = wrong_device_message(problem, [self.targets[n] for n in computing], self.capability)
            return NoRunnableVariantError(problem, message)
        reasons = {n: self.configs[n].can_implement(problem) for n in runnable}
        return UnsupportedInputError(problem, cannot_implement_message(problem, reasons, self.capability))

    def invalidate(self) -> None:
        """Forget cached decisions (after the table or the built variants changed)."""
        self._cache.clear()
        self._by_shape.clear()
        self._by_grid.clear()

    def _decide(self, problem: Problem, key: ProblemKey) -> _KeyRows:
        names = self.candidates(problem)
        if not names:
            raise self.no_candidate_error(problem)
        # Without an environment no measurement can be checked, so none is trusted.
        if self.env is None:
            return _KeyRows()
        valid = {n: self.hashes[n] for n in names}
        tuned = self._tuned(key, valid) if self.table is not None else []
        shipped = self.shipped.current(key, self.env, valid)
        if tuned or shipped:
            return _KeyRows((("tuned", tuple(tuned)), ("shipped", tuple(shipped))))
        return _KeyRows((("borrowed", tuple(self.shipped.lent(key, self.env, valid))),))

    @property
    def shipped(self) -> ShippedTable:
        if self._shipped is None:
            self._shipped = default_table()
        return self._shipped

    def _tuned(self, key: ProblemKey, valid: dict[str, str]) -> list[Row]:
        try:
            return self.table.current(key, self.env, valid)
        except (TableError, sqlite3.Error, OSError) as exc:
            warn_table_unreadable(exc)
            return []


def warn_table_unreadable(exc: Exception) -> None:
    """Warn (once per process) that dispatch ignores the tuning table because of ``exc``."""
    global _table_warning_issued
    if not _table_warning_issued:
        _table_warning_issued = True
        warnings.warn(f"flashcore: cannot read the tuning table, dispatching by heuristic: {exc}",
                      TableWarning, stacklevel=2)
