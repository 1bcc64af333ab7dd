"""The kernel ladder of the seed roadmap, one config class per generated family.

Adding a family = one subclass here (fields with ``tile(...)``, ``AXES``, resource model,
extra validation) plus ``templates/<family>.cu.j2``. Nothing else names families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .config import DTYPE_BYTES, SMEM_LIMIT_BYTES, KernelConfig, padded_head_dim, tile

# Keys per tile of the scalar kernel: one key per lane of a warp.
SCALAR_BLOCK_N = 32
# Rows of the SM80 m16n8k16 MMA atom: one warp covers 16 query rows per MMA tile.
MMA_ATOM_M = 16
# Columns of a swizzled shared-memory atom (64 halfs = 128 B, the ldmatrix/cp.async sweet spot).
SMEM_ATOM_COLS = 64
# The SM80 tensor-core atom (fp32 accumulate) per dtype.
SM80_MMA_ATOM = {
    "fp16": "SM80_16x8x16_F32F16F16F32_TN",
    "bf16": "SM80_16x8x16_F32BF16BF16F32_TN",
}
# The ladder's lower rungs are built by default only where the ladder table measures them.
LADDER_PROBLEMS = frozenset({("fp16", 64, False), ("bf16", 128, False)})
# Headers of the SM80 families (templates/include): the shared ABI and the SM80 skeleton's parts.
SM80_HEADERS = ("flashcore/api.h", "flashcore/sm80/**")


def rows_32_byte_aligned(key) -> bool:
    """Whether every Q/K/V row of ``key``'s problem is a whole number of 32-byte L2 sectors (head dim
    times element size; the TMA loads rows that are only 16-byte multiples in more, partial requests)."""
    return all(d * DTYPE_BYTES[key.dtype] % 32 == 0 for d in (key.head_dim, key.head_dim_v or key.head_dim))


@dataclass(frozen=True)
class ScalarConfig(KernelConfig):
    """Roadmap step 1: online softmax with fp32 FMAs, no tensor cores.

    A warp owns ``block_m / warps`` query rows; each lane owns one key of a 32-key tile
    for QK^T and ``head_dim / 32`` output columns for PV.
    """

    block_m: int = tile("m", "query rows per block")
    warps: int = tile("w", "warps per block")

    family: ClassVar[str] = "scalar"
    ladder_step: ClassVar[int] = 1
    MIN_CC: ClassVar[int] = 80  # plain FMAs and shuffles; compiled for sm_90a like every family
    HEADERS: ClassVar[tuple] = ("flashcore/api.h",)
    # Element-wise global loads and stores: any element-aligned input (REQUIRES_ALIGNED16 off),
    # and any head dim that is a multiple of 8 (loads past it are zeros, stores skip it).
    PADS_HEAD_DIM: ClassVar[bool] = True
    # Seconds to compile one variant, one nvcc on one core of the 2-core CPU box (nvcc 13.0; benchmarks/
    # NOTES.md, 2026-11-26 23:12-): what the build's longest-first order compares across families.
    # The H100 host's cores took 1.2-1.4x these (83b947acafbe: scalar 13.8, mma 31.8, pipelined 46.5 s).
    BUILD_SECONDS: ClassVar[float] = 9.4
    AXES: ClassVar[dict] = {"block_m": (16, 32), "warps": (4,)}
    DEFAULT_TILES: ClassVar[dict] = {d: [(16, 4)] for d in (64, 128, 256)}
    DEFAULT_PROBLEMS: ClassVar[frozenset] = LADDER_PROBLEMS

    @property
    def block_n(self) -> int:
        return SCALAR_BLOCK_N

    @property
    def rows_per_warp(self) -> int:
        return self.block_m // self.warps

    def smem_bytes(self) -> int:
        # Q tile in fp32 plus K and V tiles in fp32, K rows padded by one word (bank conflicts).
        return 4 * (self.block_m * self.head_dim + SCALAR_BLOCK_N * (self.head_dim + 1) + SCALAR_BLOCK_N * self.head_dim)

    def accumulator_registers(self) -> int:
        return self.rows_per_warp * (self.head_dim // 32 + 1)

    def validation_errors(self) -> list[str]:
        errors = super().validation_errors()
        if self.block_m % self.warps:
            errors.append(f"block_m={self.block_m} not divisible by warps={self.warps}")
        return errors

    def template_params(self) -> dict:
        return super().template_params() | {"block_n": self.block_n, "rows_per_warp": self.rows_per_warp}


@dataclass(frozen=True)
class _TensorCoreConfig(KernelConfig):
    """Shared resource model of the SM80-MMA families (Q, K, V tiles staged in shared memory)."""

    MIN_CC: ClassVar[int] = 80  # SM80 MMA atoms, cp.async, ldmatrix; compiled for sm_90a
    HEADERS: ClassVar[tuple] = SM80_HEADERS
    # 128-bit global copies: the template's <name>_can_implement checks alignment in C++.
    REQUIRES_ALIGNED16: ClassVar[bool] = True
    DEFINES_CAN_IMPLEMENT: ClassVar[bool] = True

    def kv_buffers(self) -> int:
        return 1

    def smem_bytes(self) -> int:
        elems = self.block_m * self.head_dim + 2 * self.kv_buffers() * self.block_n * self.head_dim
        return elems * self.element_bytes

    def accumulator_registers(self) -> int:
        return (self.block_m * self.head_dim + self.block_m * self.block_n) // self.threads

    def template_params(self) -> dict:
        return super().template_params() | {"mma_atom": SM80_MMA_ATOM[self.dtype]}

    def validation_errors(self) -> list[str]:
        errors = super().validation_errors()
        if errors:
            return errors
        warp_rows = MMA_ATOM_M * self.warps
        if self.block_m % warp_rows:
            errors.append(f"block_m={self.block_m} not a multiple of 16*warps={warp_rows} (one MMA row tile per warp)")
        if self.block_n % 16:
            errors.append(f"block_n={self.block_n} not a multiple of 16 (MMA K of the PV product)")
        # 128-bit copies: each row of a tile is head_dim/8 vectors; a pass of the block copies
        # threads*8/head_dim rows, which must divide the tile heights.
        rows_per_pass = self.threads * 8 // min(self.head_dim, SMEM_ATOM_COLS)
        for what, rows in (("block_m", self.block_m), ("block_n", self.block_n)):
            if rows % rows_per_pass:
                errors.append(f"{what}={rows} not a multiple of {rows_per_pass} rows copied per pass")
        return errors


@dataclass(frozen=True)
class MmaConfig(_TensorCoreConfig):
    """Roadmap step 2: both GEMMs on tensor cores (CuTe SM80 MMA atoms), P kept in registers.

    Tiles are loaded synchronously into plain row-major shared memory with a barrier per
    tile; no pipelining, no swizzle, no ldmatrix: the step's gain is the tensor cores alone.
    """

    block_m: int = tile("m", "query rows per block")
    block_n: int = tile("n", "keys per tile")
    warps: int = tile("w", "warps per block")

    family: ClassVar[str] = "mma"
    ladder_step: ClassVar[int] = 2
    BUILD_SECONDS: ClassVar[float] = 24.1  # one core of the CPU box (see ScalarConfig)
    AXES: ClassVar[dict] = {"block_m": (64, 128), "block_n": (64,), "warps": (4,)}
    DEFAULT_TILES: ClassVar[dict] = {d: [(64, 64, 4)] for d in (64, 128, 256)}
    DEFAULT_PROBLEMS: ClassVar[frozenset] = LADDER_PROBLEMS
    MEASURED_SPILLS: ClassVar[dict] = {
        "fc_mma_fp16_d64_full_m64_n64_w4": "spills 4 B; the ladder's step-2 rung, built to be measured, never to win",
    }


@dataclass(frozen=True)
class PipelinedConfig(_TensorCoreConfig):
    """Roadmap steps 3-5: cp.async K/V ring of ``stages`` slots overlapped with compute,
    swizzled shared memory read with ldmatrix, 128-bit copies, unrolled loops.

    ``lean`` = 1 trades a few instructions for registers: K slices of QK^T are streamed
    chunk by chunk and the K/V copy addresses are recomputed inside the mainloop. It cuts
    the spills of the 255-register tiles but slows others, so the tuner decides per shape.
    """

    block_m: int = tile("m", "query rows per block")
    block_n: int = tile("n", "keys per tile")
    warps: int = tile("w", "warps per block")
    stages: int = tile("s", "K/V shared-memory ring slots")
    lean: int = tile("lean", "1: register-lean mainloop (streamed K slices, recomputed copy addresses)", default=0)

    family: ClassVar[str] = "pipelined"
    ladder_step: ClassVar[int] = 3
    BUILD_SECONDS: ClassVar[float] = 37.9  # one core of the CPU box (see ScalarConfig); lean: 36.5
    AXES: ClassVar[dict] = {
        "block_m": (64, 128),
        "block_n": (32, 64, 128),
        "warps": (4, 8),
        "stages": (1, 2, 3),
        "lean": (0, 1),
    }
    # (block_m, block_n, warps, stages, lean) per head dim, for every dtype and mask: the tiles that
    # won or came within ~5 % somewhere in the sweep of every valid bf16 non-causal pipelined tile on
    # the H100 (benchmarks/NOTES.md, 2026-11-25; tuning_table-2026-11-25T1829-*.json), one block_m=64
    # tile per head dim for short query sequences, and the register-lean tiles that beat their plain
    # twins (D64 128x128 at 2-3 stages, D128 128x64 at 1 stage; tuning_table-*-lean-experiment.json).
    # Dropped after the 83b947acafbe tuning run because they spill and won no shape there:
    # D64 (128, 128, 4, 1, 0) (spills 136-192 B) and D128 (128, 64, 4, 1, 0) (48-88 B).
    # Since the sm90 family won every key of the H100 table (62 of 62 rows at ead276f70650), only
    # the ladder's problems get every tile (its "best tile" rung); the others get the first tile
    # of their head dim (for D64 and D128 the tile that won most keys in that sweep, see
    # MEASURED_SPILLS): 19 variants instead of 48, ~30 % of the default set's compile time.
    DEFAULT_ALL_TILES_FOR: ClassVar[frozenset] = LADDER_PROBLEMS
    DEFAULT_TILES: ClassVar[dict] = {
        64: [(128, 128, 4, 2, 1), (128, 128, 4, 3, 1), (128, 64, 4, 2, 0), (128, 32, 4, 2, 0), (64, 64, 4, 2, 0),
             (64, 128, 4, 3, 0)],
        128: [(128, 64, 4, 2, 0), (128, 64, 4, 1, 1), (64, 64, 4, 2, 0)],
        256: [(64, 64, 4, 1, 0), (128, 64, 8, 2, 0), (64, 32, 4, 2, 0)],
    }

    MEASURED_SPILLS: ClassVar[dict] = {
        "fc_pipelined_*_d128_*_m128_n64_w4_s2_lean0": "spills 44-68 B; fastest at 12 of the 24 D128 keys",
        "fc_pipelined_*_d128_*_m128_n64_w4_s1_lean1": "spills 36-56 B; fastest at 1 D128 key, within 3 % at 10",
        "fc_pipelined_*_d64_*_m128_n128_w4_s2_lean1": "spills 20-48 B; fastest at 7 of the 19 D64 keys",
        "fc_pipelined_*_d64_full_m64_n64_w4_s2_lean0": "spills 20 B since the GQA/causal_offset skeleton (f7e5f95); "
                                                       "the D64 tile for short query sequences on non-Hopper paths",
    }

    def kv_buffers(self) -> int:
        return self.stages

    def build_seconds(self) -> float:
        return 36.5 if self.lean else self.BUILD_SECONDS


# -- Hopper ----------------------------------------------------------------------------------
# Rows of one wgmma accumulator tile: each consumer warpgroup owns 64 query rows.
WGMMA_M = 64
# Registers per thread after setmaxnreg, (producer, consumer) by consumer warpgroups: FA3's split
# (HOPPER_FACTS.md §3); producer*128 + consumer*128*WGs stays within the SM's 64K registers.
# Four consumer warpgroups (key-split only: common.cuh RegisterSplit<4>): 640 threads launch at 96
# registers each, a per-CTA pool that 24 x 128 + 112 x 512 fits.
SM90_REGISTER_SPLIT = {1: (56, 256), 2: (24, 240), 3: (32, 160), 4: (24, 112)}
# Split-KV variants (common.cuh RegisterSplit<WGs, true>): a roomier producer where it spilled.
SM90_REGISTER_SPLIT_KV = {2: (40, 232)}
# Several CTAs per SM (common.cuh RegisterSplit<1, false, CTAs>), by CTAs per SM: two launch at 128
# registers a thread, three at 80 (setmaxnreg moves registers only within a CTA's pool).
SM90_REGISTER_SPLIT_MULTI_CTA = {2: {1: (24, 232)}, 3: {1: (24, 136)}}
# The SM's shared memory (co-resident CTAs share it; the driver reserves 1 KB per CTA).
SM90_SMEM_PER_SM = 228 * 1024
SM90_SMEM_RESERVED_PER_CTA = 1024
# Registers a consumer thread needs beyond its accumulators (addresses, softmax state, descriptors).
SM90_REGISTER_OVERHEAD = 32
SM90_SCHEDULES = ("sequential", "overlap", "pingpong")
# wgmma N sizes CuTe declares without CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED (cute/arch/mma_sm90_gmma.hpp;
# mirrored by is_base_wgmma_n in flashcore/sm90/qk_atom.cuh). A block_n outside them takes its QK^T atom
# from CuTe's dense extended shapes (flashcore/sm90/extended_shapes.cuh, ~76k lines), which only such a
# variant includes; the define itself would also pull the sparse extended shapes (~78k more lines, never
# used): benchmarks/NOTES.md 2026-11-26 23:12- and 2026-11-28 05:21-.
SM90_BASE_WGMMA_N = (8, 16, 32, 64, 96, 128, 192, 256)
# The block_n sizes beyond those whose QK^T atom extended_shapes.cuh names (FLASHCORE_SM90_EXTENDED_QK_ATOM).
SM90_EXTENDED_QK_N = (48, 80, 112, 144, 176)
# The most CTAs a portable thread-block cluster holds (split-KV through a cluster).
SM90_MAX_CLUSTER = 8
# Split-KV through global memory: its scratch (fp32 partial O and LSE per share of every query
# tile) grows with the query tiles; past this the variant refuses the call (kernel_ws.cuh
# kMaxSplitWorkspace, the same words), so dispatch keeps it to problems with few query tiles.
SM90_MAX_SPLIT_WORKSPACE = 2 << 30
SM90_SPLIT_WORKSPACE_REASON = ("this split-KV variant combines through global scratch, which would exceed 2 GB for "
                               "the call's query tiles: it serves problems with few query tiles")
# Shared memory the sm90 kernel reserves beside its tiles (barriers, scheduler ring, alignment):
# traits.cuh kBarrierBytes, used to decide whether O gets a buffer of its own.
SM90_BARRIER_BYTES = 2048
# Keys from which a stream-K variant cuts a call into equal key ranges (stream_k.cuh kStreamKMinKeys).
SM90_STREAM_K_MIN_KEYS = 8192


@dataclass(frozen=True)
class Sm90Config(KernelConfig):
    """Hopper-native: Q/K/V by TMA into a K/V mbarrier ring of ``stages`` slots, both GEMMs on
    wgmma (QK^T from shared memory, PV with P in registers), warp specialisation (one producer
    warpgroup at a lowered register budget issues TMA; ``block_m / 64`` consumer warpgroups),
    O through shared memory and a TMA store. ``schedule``: 0 = QK^T, softmax, PV in sequence;
    1 = intra-warpgroup overlap (the next QK^T is issued before this tile's softmax, FA3
    Algorithm 2); 2 = overlap plus ping-pong between consumer warpgroups. ``persistent`` = 1:
    grid = SM count, tiles handed out statically. ``splits`` > 1 (split-KV, for problems with
    fewer query tiles than SMs): that many CTAs per query tile, each walking its share of the key
    tiles. ``combine`` = 0: they form a cluster and combine the partial results through distributed
    shared memory (at most 8, the portable cluster size); 1: no cluster, each writes its partial to
    global scratch and the last to finish combines them (any split count, no gang launch).
    ``ctas_per_sm`` = 2 or 3 (one consumer warpgroup, that share of the SM's shared memory and
    registers each): the CTAs share an SM, so one's tile edges (Q wait, first QK^T and softmax,
    epilogue) overlap the others' key loops; a persistent grid is then that multiple of the SM count. ``head_dim_v`` (0: Q's head
    dim): V's and the output's head dim where below Q's and K's (DeepSeek's 192/128): the PV GEMM,
    the O accumulator, the V ring and the O store take only its columns (traits.cuh TraitsDv).
    ``key_split_wgs`` > 1 (few query tiles, long keys): that many consumer warpgroups share each
    64-row query tile, WG w walking key tiles w, w + key_split_wgs, ... of it, and combine their
    partial results in shared memory before WG 0's epilogue (one tile per CTA, no cluster; each WG
    owns stages / key_split_wgs ring slots; key_split.cuh). ``lazy_rescale`` = 1: a row keeps its
    running max until a key tile's max exceeds it by more than 8 (log2 units), so the key loop's
    rescale of O, Dv / 2 multiplies a thread per tile, runs only on the few tiles where some row of
    a warp grew that much (softmax.cuh). ``stream_k`` = 1 (persistent, non-causal): where the query
    tiles are whole and outnumber the SMs unevenly, every CTA walks an equal range of the call's key
    tiles, a tile cut between two CTAs being combined through global scratch (stream_k.cuh), instead
    of the static schedule's last partial round; other calls run as without it. ``wg_keys`` = 1
    (masked tiles of several row warpgroups, block_n < block_m): each consumer warpgroup walks only
    the key tiles its own 64 rows see, so on a causal diagonal the warpgroups above it skip the
    tiles right of their rows instead of computing them fully masked (mainloop.cuh).
    """

    block_m: int = tile("m", "query rows per block (64 per consumer warpgroup)")
    block_n: int = tile("n", "keys per tile")
    stages: int = tile("s", "K/V shared-memory ring slots")
    schedule: int = tile("sch", "0 sequential, 1 intra-warpgroup overlap, 2 overlap + ping-pong")
    persistent: int = tile("p", "1: persistent grid of SM-count CTAs")
    splits: int = tile("kv", "CTAs (one cluster) sharing a query tile's key tiles (split-KV)", default=1)
    ctas_per_sm: int = tile("c", "CTAs resident per SM (2, 3: one-warpgroup CTAs interleave their tiles)",
                            default=1, spell_default=False)
    combine: int = tile("g", "split-KV combine: 0 through the cluster's shared memory, 1 through global memory "
                             "(no cluster: any split count)", default=0, spell_default=False)
    pack_gqa: int = tile("pq", "1: the query heads of a GQA group packed into the rows of one 64-row tile",
                         default=0, spell_default=False)
    head_dim_v: int = tile("v", "V's and the output's head dim where below Q's and K's (0: the same)",
                           default=0, spell_default=False)
    key_split_wgs: int = tile("ks", "consumer warpgroups sharing one 64-row query tile's key tiles",
                              default=1, spell_default=False)
    lazy_rescale: int = tile("lr", "1: O rescaled only when a row's max grows by more than 8 in log2 units (its "
                                   "weights up to 2^8); 0: whenever it grows", default=0, spell_default=False)
    stream_k: int = tile("sk", "1: persistent non-causal CTAs walk equal ranges of the call's key tiles, tiles cut "
                               "between two CTAs combined through global scratch (stream-K)", default=0,
                         spell_default=False)
    wg_keys: int = tile("wk", "1: each consumer warpgroup walks only the key tiles its own rows see (masked "
                              "multi-warpgroup tiles)", default=0, spell_default=False)

    family: ClassVar[str] = "sm90"
    ladder_step: ClassVar[int] = 6
    ARCH: ClassVar[str] = "sm_90a"  # wgmma, setmaxnreg: arch-specific
    MIN_CC: ClassVar[int] = 90
    HEADERS: ClassVar[tuple] = ("flashcore/api.h", "flashcore/sm90/**")
    # TMA: 16-byte aligned pointers and strides (FwdKernel::can_implement); scratch for the
    # dynamic tile scheduler (FwdKernel::workspace_bytes).
    REQUIRES_ALIGNED16: ClassVar[bool] = True
    DEFINES_CAN_IMPLEMENT: ClassVar[bool] = True
    # TMA zero-fills the head-dim columns past the call's on load and clips them on store.
    PADS_HEAD_DIM: ClassVar[bool] = True
    DEFINES_WORKSPACE_BYTES: ClassVar[bool] = True
    PROGRAMMATIC_LAUNCH: ClassVar[bool] = True  # griddepcontrol (kernel_ws.cuh)
    # 192 beside 64/128/256: calls of head dim 136-192 (and DeepSeek-style 192/128) would
    # otherwise pad to 256, a third more GEMM work.
    HEAD_DIMS: ClassVar[tuple] = (64, 128, 192, 256)
    # One core of the CPU box (see ScalarConfig): 28.7 s (a split-KV 64-row tile 22.7), and 53 s for a
    # tile that needs an extended wgmma shape (D256 128x80 lazy: 52.5-53.6 s with the dense extended
    # shapes alone, 73.7-100 s with CuTe's define, which adds the sparse ones; 2026-11-28 05:21-).
    BUILD_SECONDS: ClassVar[float] = 28.7
    BUILD_SECONDS_EXTENDED_SHAPES: ClassVar[float] = 53.0
    AXES: ClassVar[dict] = {
        "block_m": (64, 128, 192),
        "block_n": (48, 64, 80, 96, 112, 128, 144, 176, 192),
        "stages": (2, 3, 4),
        "schedule": (0, 1, 2),
        "persistent": (0, 1),
        "splits": (1, 2, 4, 8, 16),
        "ctas_per_sm": (1, 2, 3),
        "combine": (0, 1),
        "pack_gqa": (0, 1),
        "head_dim_v": (0, 128),
        "key_split_wgs": (1, 2, 4),
        "lazy_rescale": (0, 1),
        "stream_k": (0, 1),
        "wg_keys": (0, 1),
    }
    # Key-split warpgroups share one 64-row query tile per CTA (key_split.cuh).
    AXIS_SCOPES: ClassVar[dict] = {
        # Lazy rescaling: the key-split combine (key_split.cuh) does not carry the lazy softmax's rounding sums.
        "key_split_wgs": {"block_m": 64, "persistent": 0, "splits": 1, "ctas_per_sm": 1, "combine": 0, "pack_gqa": 0,
                          "lazy_rescale": 0},
        # Stream-K: persistent CTAs, one per SM, whole query tiles of one query head (kernel_ws.cuh).
        "stream_k": {"persistent": 1, "splits": 1, "ctas_per_sm": 1, "combine": 0, "pack_gqa": 0, "key_split_wgs": 1},
        # Per-WG key ranges: masked multi-WG tiles without split-KV, GQA packing or stream-K (WgKeyTraits).
        "wg_keys": {"splits": 1, "ctas_per_sm": 1, "combine": 0, "pack_gqa": 0, "key_split_wgs": 1, "stream_k": 0},
    }
    # Per head dim, for every dtype and mask: the fastest tiles of the harness runs 4-5 on the H100
    # (benchmarks/experiments/sm90/NOTES.md, 2026-11-26), all persistent (they won every short-grid
    # cell but one): D64 3 WGs 192x128 (non-causal) and 128x128 (causal, S=1024); D128 128x128
    # ping-pong (non-causal) and overlap (causal); D256 128x80 (4-10 % over 128x64 p1 before O
    # moved to the V ring) and, since O moved there (benchmarks/NOTES.md, 2026-11-26 13:42-, call 6),
    # 128x64 again: causal S=512 / 1k 110.8-111.5 / 159.9 us against 128x80's 115.6 / 167.4 and
    # 128x48's 113.1 / 167.9 (128x48, whose O has a buffer of its own, won causal S=512 before:
    # 114.0 vs 130.7 us, 2026-11-26 09:11-, call 5; it left the defaults), no spill. D192 128x80 ping-pong:
    # the fastest of six D192 tiles at causal 1k/2k (125.5 / 120.6 us), 3.5 % behind 128x112 on
    # DeepSeek's 192/128 (205.8 vs 198.6 us; call 12).
    # Few query tiles (benchmarks/NOTES.md, issue 8 calls 2-6; kernel time, fp16): 64-row tiles
    # without split for (1, 8, 512/1024, 64) (6.6 / 10.3 us, SDPA 8.1 / 12.4); ping-pong 128-row
    # tiles for (4, 16, 512, 64) and (8, 8, 512, 64) (14.4 / 14.5 us, SDPA 13.9); split-KV
    # clusters of 2 over 64-row tiles for short queries on long keys ((1, 8, 64, 8192): 37.5 us,
    # SDPA 72.4, unsplit 61.3). Clusters of 4 lost on the shapes measured then (a cluster costs
    # ~1.65-2 us: one query tile and one key tile take 3.5-4.5 us as one CTA, 5.1-7.3 as a
    # cluster); they win (1, 8, 128, 4096) (below).
    # Two one-WG CTAs per SM (ctas_per_sm = 2; benchmarks/NOTES.md, 2026-11-26 20:02-, call 2,
    # tuner medians): D64 64x128 causal S=512 143.6 us against 153.9 (128x128), D128 64x64 causal
    # S=512 112.4 against 115.8 (a default until 2026-11-28: it won no key of either shipped table); 1-20 %
    # behind elsewhere (each CTA streams its own K/V).
    # Split-KV clusters of 8 over 64-row tiles (non-causal only: the tuner's long-key shapes are
    # unmasked; benchmarks/NOTES.md, 2026-11-26 21:48-, call 4, graph us per call): (1, 8, 64, 8192)
    # 12.5 against kv2's 32.4 at D64 and 16.9 against 39.8 at D128 (SDPA 74.6 / 97.5); (1, 8, 128,
    # 4096) 16.2 / 21.8 against kv2's 18.5 / 22.9 and kv4's 12.3 / 15.4 (clusters of 4 joined once
    # the tiles with CuTe's base wgmma shapes compiled in half the time, 2026-11-26 23:12-); kv2 stays
    # ahead where the query tiles already fill more SMs ((1, 32, 64, 4096), (4, 8, 64, 2048)).
    # D256 clusters of 4 over 64x64 tiles, non-causal: GQA decoding packs a group's query heads into
    # the rows of one unmasked problem (Gemma-2: 2 rows of 16 heads on 8 over 8k keys), which the
    # 128-row D256 tiles ran as B x Hkv CTAs with a serial loop over every key.
    # The clusters serve causal problems too since the problem key holds the alignment (KV-cache
    # decoding: bottom-right rows see every key). Mask-specific (DEFAULT_MASK_ONLY), against the
    # 5-minute build bound: the one-CTA 64x128 D64 tile for non-causal problems only, the D64
    # 128x128 tiles for causal ones only (neither won a key of the other mask in the shipped table
    # of d29b68f).
    # Split-KV through global memory (combine = 1; benchmarks/NOTES.md, 2026-11-27 02:22-, calls 1-6,
    # tuner us, bf16, K/V from HBM as decoding reads it): 8 CTAs a query tile without a cluster beat
    # the cluster of 8 on the packed GQA decoding problems with the fewest query tiles, whose tiles hold
    # 2-8 rows: Llama-3 (1, 8, 4 rows, 32768 keys) 52.0 against 59.0, (4, 8, 4, 8192) 31.7 against 36.4,
    # Qwen2's (4, 4, 7, 4096) 18.4 against 23.0 (the cluster of 4: 18.1), Gemma-2's D256 (2, 8, 2, 8192)
    # 50.8 against the cluster of 4's 59.4; tied at (1, 8, 4, 8192) (18.3 / 18.4). 16 CTAs tied 8 at
    # 32k keys and won only with the K/V in L2, so they are not built by default. With whole 64-row
    # tiles the last CTA's serial combine of every row costs more than the cluster saves ((1, 8, 64,
    # 8192): 23.7 against 16.5 at D128, 16.6 against 12.1 at D64), so not for D64, whose packed
    # problems are rare, and non-causal only (the packed problems are unmasked).
    # GQA packing into rows (pack_gqa = 1, pack_gqa.cuh) for 1 < Sq < 64 under a mask (speculative
    # decoding: a few draft tokens per sequence, bottom-right causal): each K/V head's G query heads
    # share its tiles, so a K/V head is read by one tile (per split) instead of G. Masked only, D128
    # (Llama-3, Mistral, Qwen2) and D256 (Gemma-2), with the split-KV shapes that won the tune of the
    # spec-decode suite on an H200 (benchmarks/NOTES.md, 2026-11-27 04:02-, call 1; 7 more built there):
    # clusters of 8 at batch 1 (Llama-3 4 rows over 8k keys 15.9 us, Qwen2 10.6), 4 through global
    # memory at batch 4 (25.9; the cluster of 2 26.1 in fp16), 8 through global memory at D256 (39.5);
    # on the H100 (calls 2 and 6) clusters of 8 at batch 1, of 2 at batch 4. D64 (the small models
    # speculative decoding drafts with: Llama-3.2-1B 32/8, Qwen2.5-0.5B 14/2) with the clusters of 2 and 8.
    # A V head dim of its own (head_dim_v = 128, `_v128`) for DeepSeek-V2/V3's 192/128 prefill, causal: the
    # PV GEMM, O accumulator (64 registers instead of 96), V ring and O store at 128, so a 128x128 tile
    # fits (Q 48 KB + K ring 96 KB + V ring 64 KB, O staged in the V ring). Tuner, same run (benchmarks/
    # NOTES.md, 2026-11-27 06:33-, call 3; bf16, us): (1, 16, 4096) 170.8 without ping-pong / 176.9 with /
    # 204.9 on the D192 128x80 ping-pong tile that pads V; (2, 16, 2048) 98.8 / 100.9 / 118.2; (1, 128,
    # 4096) 1255.1 / 1250.2 / 1452.7. 128x112 and 128x96 (call 2) lost to 128x128 at every key.
    # Key-split warpgroups (key_split_wgs = 2, 4 stages: two ring slots each; key_split.cuh) for few-CTA
    # problems with many key tiles per CTA (benchmarks/NOTES.md, 2026-11-27 10:25-, calls 2-4; tuner
    # us, against the best one-WG tile of the same run): D64 64x128, non-causal (1, 8, 1024) 8.74 / 9.00
    # (fp16 / bf16) against 9.53 / 9.75; causal, where the longest CTA's key loop is the kernel's,
    # (1, 8, 1024) 8.83 / 8.73 against 12.78 / 12.72, (1, 8, 2048) 22.8 / 23.1 against 24.6 / 25.0,
    # (1, 4, 4096) 36.2 / 36.7 against 42.9 / 44.1; tied at (1, 16, 1024), behind at 512 keys and
    # where split-KV pays ((1, 1, 2048): 14.3 against kv2's 11.0). D128 64x64 causal (bf16):
    # (1, 8, 1024) 12.0 against 16.8; behind the ping-pong tile from 2k keys on (33.6 against 30.8).
    # The tail of a tile tuple that turns lazy rescaling on, every axis between at its default
    # (ctas_per_sm, combine, pack_gqa, head_dim_v, key_split_wgs, then lazy_rescale): the 128- and
    # 192-row tiles are built as their lazy twins (benchmarks/NOTES.md, 2026-11-27 16:11-).
    LAZY: ClassVar[tuple] = (1, 0, 0, 0, 1, 1)
    # The D64 two-CTA tile is built as its lazy twin for non-causal problems only: Nsight Compute kernel
    # times, the grid's cells, against the eager tile (benchmarks/NOTES.md, 2026-11-27 18:48-, call 2):
    # non-causal S = 512 190.8 against 195.1 us, causal S = 512 148.5 / 147.1, causal 1k 222.4 / 224.1.
    LAZY_TWO_CTAS: ClassVar[tuple] = (2,) + LAZY[1:]
    # Three one-WG CTAs per SM (ctas_per_sm = 3: 80 registers a thread at launch, 24 / 136 after
    # setmaxnreg, 75 KB of shared memory each), D64 64x64 lazy, causal only: the fastest tile at the
    # grid's short D64 causal keys in two tunes (benchmarks/NOTES.md, 2026-11-28 02:19-, calls 1-2;
    # tuner us, bf16): S = 512 133.0 against 155.6 (128x128) as graph replays, 161.9 against the
    # two-CTA 64x128 tile's 172.6 timed call by call; S = 1k 225.8 / 227.3 and 241.7 / 249.2. 64x96
    # with three CTAs won S = 2k by 4.5 % in one tune on the H100 and spilled (12 B) under the mask; on the
    # H200 it won S = 2k again (benchmarks/NOTES.md, 2026-11-28 12:28-, call 2; tuner us, --careful 6
    # --warmup-ms 500): 396.1 against 64x64's 407.2 and the 128x128 tile's 409.6, spilling 4 B (80
    # registers): a default until 2026-11-28 21:20-. The D128 64x64 two-CTA tile left the defaults then (it won
    # no key of either shipped table and came within 3.4 % of the fastest at one key of the H200's tune of
    # every default candidate, 8-25 % behind at the grid's).
    # The same 64x64 tile with a third K/V ring slot (57 KB of shared memory), causal only: in an interleaved A/B
    # against the shipped tiles (benchmarks/NOTES.md, 2026-11-28 21:20-, call 5; us one call at a time, 3 rounds)
    # 147.9 against 153.8 at the grid's D64 causal S = 512 cell (SDPA 149.3), level at 1k and 2k (240.1 / 406.0
    # against 238.0 / 405.1); one CTA a tile instead of the persistent grid lost 1-3 % at all three. In the re-tune
    # of the 32 D64 causal keys that followed (call 6, --careful 6 --warmup-ms 500) it won S = 512 (149.6 against
    # 163.9 us) and 2k (403.3 against 64x96's 403.6), so 64x96 won no key any more and left the defaults (the
    # 5-minute build bound: 117 variants).
    LAZY_THREE_CTAS: ClassVar[tuple] = (3,) + LAZY[1:]
    # D64 causal 192x96 (lazy; causal only): in a tune of the grid's D64 causal keys beside ten other
    # lazy tiles (benchmarks/NOTES.md, 2026-11-27 23:54-, call 2; tuner us, one run) the fastest at S = 4k,
    # 696.9 against 192x128's 711.1 and the 128x128 ping-pong tile's 746.7 (the shipped winner there);
    # second at 8k (1234.5 / 1218.4). With the eager softmax, 192x96 had lost 2-14 % to 192x128 at the D64
    # keys it was timed at (2026-11-26 15:50-, call 8). Its `_wk1` twin left the defaults on 2026-11-29 (19:32-)
    # with the D64 causal 128x128 ping-pong tile and the D192/128 ping-pong tile: none won a key of the shipped
    # table (255 rows) in either dtype, and the heuristic picks none of them for any problem of a sweep of ~60k
    # (benchmarks/experiments/unpicked_defaults.py, which tests/benchmarks keeps true of every sm90 default).
    # Six variants of ~36-55 s of a core each, against the 5-minute build bound.
    # Stream-K twins (the stream_k axis: `--only '*_sk1'` builds them) were defaults for one session: on one
    # H200 they beat the D128 128x128 overlapped and D256 128x64 tiles at 8k-16k keys by 0.6-1.9 %
    # (benchmarks/NOTES.md, 2026-11-29 03:22-); on a hotter one, at the power cap, they lost 0.4-3.3 % and ran
    # 60-90 MHz lower, and the re-tune gave them no key (2026-11-29 05:03-), so they left the defaults for the
    # 16-way global split-KV tile below (the 5-minute build bound).
    # D128 16-way split-KV through global memory (non-causal: GQA decoding's packed problems): one sequence's
    # 8 KV heads over 32k keys are 64 CTAs at 8 splits, which on the H200 stream 3.2 TB/s; 128 CTAs took 37.5
    # against 42.3 us (SDPA 37.1; 2026-11-29 05:03-, call 6). On the H100 the two had tied (51.9 / 52.0 us).
    # Per-warpgroup key ranges (wg_keys = 1, the tail after stream_k) for the causal twins of the D64
    # 192-row tiles and the D256 128x64 tile: in an interleaved A/B against the same tiles without them
    # (benchmarks/NOTES.md, 2026-11-29 12:55-, call 3; H200, bf16, us one call at a time as the grid
    # times), D64 192x128 causal 4k 651.9 against 712.8, 8k 1157.4 / 1197.2; D256 128x64 causal 512
    # 112.3 / 119.3, 1k 160.5 / 167.6, 2k 268.2 / 287.0, 4k 479.6 / 477.8, 8k 856.0 / 876.1. The D128
    # 128x64 tile with them did not beat the 128x128 one at causal 512 / 1k (127.3 / 184.4 against
    # 119.0 / 184.4), nor the D64 128x64 / 192x64 ones the three-CTA 64x64 tile at 512 (170-177 against
    # 147.2): not built by default.
    LAZY_WG_KEYS: ClassVar[tuple] = LAZY + (0, 1)
    DEFAULT_TILES: ClassVar[dict] = {
        64: [(192, 128, 2, 1, 1, 1) + LAZY, (192, 128, 2, 1, 1, 1) + LAZY_WG_KEYS,
             (128, 128, 2, 1, 1, 1) + LAZY,
             (64, 128, 2, 1, 0, 1), (64, 128, 2, 1, 0, 2), (64, 128, 2, 1, 1, 1, 2),
             (64, 128, 2, 1, 1, 1) + LAZY_TWO_CTAS, (64, 64, 2, 1, 1, 1) + LAZY_THREE_CTAS,
             (64, 64, 3, 1, 1, 1) + LAZY_THREE_CTAS, (64, 128, 2, 1, 0, 8),
             (64, 128, 2, 1, 0, 4),
             (64, 128, 2, 1, 0, 2, 1, 0, 1), (64, 128, 2, 1, 0, 8, 1, 0, 1), (64, 128, 4, 1, 0, 1, 1, 0, 0, 0, 2)],
        128: [(128, 128, 2, 2, 1, 1) + LAZY, (128, 128, 2, 1, 1, 1) + LAZY,
              (64, 128, 2, 1, 0, 2), (64, 128, 2, 1, 0, 16, 1, 1),
              (64, 128, 2, 1, 0, 8), (64, 128, 2, 1, 0, 4), (64, 128, 2, 1, 0, 8, 1, 1),
              (64, 128, 2, 1, 0, 2, 1, 0, 1), (64, 128, 2, 1, 0, 8, 1, 0, 1), (64, 128, 2, 1, 0, 8, 1, 1, 1),
              (64, 64, 4, 1, 0, 1, 1, 0, 0, 0, 2)],
        192: [(128, 80, 2, 2, 1, 1), (128, 128, 2, 1, 1, 1, 1, 0, 0, 128)],
        256: [(128, 80, 2, 1, 1, 1) + LAZY, (128, 64, 2, 1, 1, 1) + LAZY, (128, 64, 2, 1, 1, 1) + LAZY_WG_KEYS,
              (64, 64, 2, 1, 0, 4),
              (64, 64, 2, 1, 0, 8, 1, 1), (64, 64, 2, 1, 0, 4, 1, 0, 1), (64, 64, 2, 1, 0, 8, 1, 1, 1)],
    }
    DEFAULT_MASK_ONLY: ClassVar[dict] = {
        (64, (64, 128, 2, 1, 0, 1)): False, (256, (64, 64, 2, 1, 0, 4)): False,
        (64, (64, 128, 2, 1, 1, 1, 2)): True, (64, (64, 128, 2, 1, 1, 1) + LAZY_TWO_CTAS): False,
        (64, (64, 64, 2, 1, 1, 1) + LAZY_THREE_CTAS): True, (64, (64, 64, 3, 1, 1, 1) + LAZY_THREE_CTAS): True,
        (64, (128, 128, 2, 1, 1, 1) + LAZY): True,
        (64, (192, 128, 2, 1, 1, 1) + LAZY): False, (64, (192, 128, 2, 1, 1, 1) + LAZY_WG_KEYS): True,
        (256, (128, 64, 2, 1, 1, 1) + LAZY): False, (256, (128, 64, 2, 1, 1, 1) + LAZY_WG_KEYS): True,
        (128, (64, 128, 2, 1, 0, 8, 1, 1)): False, (256, (64, 64, 2, 1, 0, 8, 1, 1)): False,
        (64, (64, 128, 2, 1, 0, 2, 1, 0, 1)): True, (64, (64, 128, 2, 1, 0, 8, 1, 0, 1)): True,
        (128, (64, 128, 2, 1, 0, 2, 1, 0, 1)): True, (128, (64, 128, 2, 1, 0, 8, 1, 0, 1)): True,
        (128, (64, 128, 2, 1, 0, 8, 1, 1, 1)): True, (256, (64, 64, 2, 1, 0, 4, 1, 0, 1)): True,
        (256, (64, 64, 2, 1, 0, 8, 1, 1, 1)): True, (192, (128, 128, 2, 1, 1, 1, 1, 0, 0, 128)): True,
        (128, (64, 64, 4, 1, 0, 1, 1, 0, 0, 0, 2)): True,
        (128, (64, 128, 2, 1, 0, 16, 1, 1)): False,
    }
    # Untuned D256 shapes take the generic block_n 64 (128x64). On the H100 kernels of 2026-11-26 128x80 won
    # every D256 key from S = 2k on (NOTES 13:42-, call 7), and sm90 preferred it until 2026-11-29; on today's
    # kernels (H200 tuner runs, the latest per key, 14 prefill keys of both masks, 512-16k rows) 128x64 took
    # 1.003x the fastest time in geometric mean and 128x80 1.035x: causal 128x64 won 7 of 8 (128x80 up to
    # 1.168x at (32, 8, 512)), non-causal the two split 3 / 3 within 2.1 % (128x80 1.056x at (1, 8, 16384)).
    # Audit 1.010x -> 1.008x over 212 keys (benchmarks/NOTES.md, 2026-11-29 11:08-); not held out.
    # D128: the ping-pong schedule (schedule 2) over the overlapped one (1) on the 128x128 tile, which
    # the generic preferences leave tied (the name picked 1): in every tuning run so far that timed both
    # (59 keys, fp16/bf16, both masks, 4-16k rows to decoding), ping-pong was faster at 51, by 3-6 %
    # (geometric means per dtype and mask 0.944-0.967), up to 13.5 % ((2, 16, 1024) non-causal), and at most
    # 1.7 % slower (benchmarks/NOTES.md, 2026-11-27 13:30-). D64's two schedules tie (0.993 / 1.001).
    HEURISTIC_TILES: ClassVar[dict] = {128: {"schedule": 2}}
    # Untuned D64 problems without a mask whose 64-row tiles outnumber the SMs (heuristic_tiles). The
    # D64 non-causal defaults have no 128-row tile, and the one-CTA 64-row tile the generic rule fell
    # back on was 1.4-2.0x behind the best at all 11 untuned model keys measured (benchmarks/NOTES.md,
    # 2026-11-27 13:30-, call 2). Of the other two, per key (tuner us, that call and the grid tune of
    # 2026-11-26 23:40): the 192-row tile wins where its padding is small (Sq > 512: <= 12.5 %) and its
    # tiles fill whole waves of the SMs (>= 85 % of the last one: (2, 20, 1024) 31.5 against 34.7,
    # (8, 16, 1024) 88.6 / 89.7, (1, 32, 4096) 318.8 / 342.6, the grid's 2k-16k keys by 15-22 %); two
    # one-WG CTAs per SM win elsewhere: short rows ((64, 12, 197) 47.8 against 69.4, (4, 32, 256) 9.5 /
    # 12.8, (32, 12, 512) 74.7 / 76.8) and ragged waves ((1, 16, 2048): 176 tiles, 43.2 / 55.0).
    # Head dims whose rows are 16-byte but not 32-byte multiples (D = 40, 56 in 2-byte types) take the
    # 192-row tile from Sq > 256 on, whole waves or not: the TMA loads of such rows cost several L2
    # requests each (Nsight Compute, (16, 32, 1024) on the two-CTA tile: 73.1 M requests at D40 against
    # 25.1 M at D32 and 38.5 M at D48), and the 64-row tiles, which load every K/V row three times as
    # often, ran 1.7x slower than at D32 / D48 (622 against 360 / 367 us; D56 470), while the 192-row
    # tile kept pace (360 / 363). D40, 192-row against two-CTA tile, us: (2, 8, 4096) 178 / 341,
    # (1, 16, 2048) 75 / 103, (32, 12, 512) 97 / 137, (16, 16, 512) 67 / 100; in the bucket of 256 rows,
    # which keeps the two-CTA tile, (4, 32, 256) 25.6 / 27.2 but (64, 12, 197) 81 / 69 (benchmarks/NOTES.md,
    # 2026-11-27 14:45-, calls 1-2).
    D64_WIDE_ABOVE_SEQLEN_Q = 512
    D64_WIDE_ABOVE_SEQLEN_Q_UNALIGNED_ROWS = 256
    D64_WIDE_MIN_LAST_WAVE = 0.85
    # D64 causal (the H200's tuned keys; benchmarks/NOTES.md, 2026-11-29 06:37-): the 192-row tile won every grid
    # key from Sq = 4096 on (and 2k since `_wk1`, below), three one-WG 64x64 CTAs per SM the grid's 512-2k keys (512
    # and 1k since), and the 128x128 tiles, the flat rules' pick, no key (1.16x the 64x64 three-CTA tile's time at
    # (32, 32, 512); at (1, 24, 1024) 22.3 us against 20.1, the two-CTA 64x128 tile 20.0), 192x128 rather than
    # 192x96 (the shipped winner at 4k, 8k and 16k; held out, (2, 16, 8192) 642 us against 663). At 7 held-out
    # shapes (tuning_table-2026-11-29T0745-*) the picks took 1.00-1.005x the fastest time at 5, and the 128-row tile
    # 1.06-1.16x at all 7; (1, 16, 4096) went to the key-split tile (1.16x). Not measured for rows of no whole
    # 32-byte sectors (D40, D56), whose 64-row tiles pay for their loads, nor for windows or bottom-right calls over
    # more keys than queries: they keep the flat rules.
    # From Sq = 2k (the bucket of 1025-2048 rows) since 2026-11-29 18:19- (4096 before): once the 192-row tile's
    # warpgroups skip the key tiles right of their rows (`_wk1`), it won the grid's 2k key (372 us against the
    # three-CTA tile's 403) and, at 5 shapes tuned after (tuner us, its time / the three-CTA 64x64 tile's, the
    # rule's pick before / the fastest): (4, 32, 2048) 207.3 / 213.1, the fastest; (4, 16, 2048) 123.0 / 129.3,
    # the fastest; (8, 32, 1536) 233.6 / 244.3, the fastest; (16, 32, 2048) 733.2 / 775.4, the two-CTA tile
    # 728.3; (4, 32, 3072) 384.3 / 399.5, the fastest (the 4k bucket, which took it already): 1.000-1.007x the
    # fastest against 1.028-1.065x (tuning_table-2026-11-29T1851-H200-2ce9c2f6e287-d64-causal-2k.json). The 1k
    # key stays with the three-CTA tile (243.7 against 263.5 us, 9 rounds of the grid's protocol).
    # Read on the grid's rows (Problem.grid_key: Sq in 64-row tiles), not the bucket's top, since 2026-11-29
    # (19:32-): inside the bucket the 192-row tile wins only its long end. Tuner us, bf16, not few waves, the
    # 192-row `_wk1` tile / the best 64-row tile (the three-CTA 64x64, s2 or s3): 1920 and 2048 rows, 5 shapes,
    # 1.000-1.007x the fastest against 1.020-1.071x; 1536 rows (8, 32) 1.000 / 1.031x (the rule's s2 pick
    # 1.046x: the one shape it loses); below, 1.019-1.286x against 1.000-1.001x ((2, 40, 1664) 1.019, (12, 16,
    # 1792) 1.021, (2, 32, 1280) 1.102, (32, 8, 1100) 1.101, (4, 24, 1408) 1.286) (tuning_table-2026-11-29T1851-*,
    # T1950-* and T1952-*-more, all measured before the rule was written, which is fitted on them). Over the 11: the
    # rule's picks 1.007x the fastest in geometric mean, the whole bucket on the 192-row tile 1.046x. Heuristic
    # audit over 219 keys: 1.009x -> 1.007x.
    D64_CAUSAL_WIDE_FROM_ROWS = 1920
    # Few heads at 2k-4k (benchmarks/NOTES.md, 2026-11-29 11:08-; H200 tuner runs, bf16): where the 192-row
    # tiles fill fewer than 4 waves of the SMs (the bucketed key's B*H), the two-CTA 64x128 tile took,
    # against the fastest, / the rules' pick (three-CTA below 4k, 192-row from 4k): (1, 12, 2048) 1.036 /
    # 1.109x, (1, 20, 2048) 1.000 / 1.078x, (2, 12, 2048) 1.000 / 1.051x, (1, 14/2, 4096) 1.000 / 1.123x,
    # (1, 16, 4096) 1.032 / 1.140x, (1, 8, 4096) 1.152 / 1.246x (the key-split tile won the first, fifth and
    # sixth). From 4 waves the rules above hold ((4, 16, 2048) three-CTA then, the 192-row `_wk1` tile since;
    # (1, 16, 8192) and (1, 32, 4096) 192-row); past 4k keys with few waves nothing was measured, so the
    # 192-row rule stands there. Fitted on these keys; at 4 shapes measured after it ((2, 8, 2048), (1, 28,
    # 2048), (1, 12, 4096), (3, 8, 4096)) its picks took 1.000-1.025x the fastest time, the rules before
    # 1.025-1.062x. Against the 192-row `_wk1` tile, which came after that fit (tuning_table-2026-11-29T1950-*,
    # tuner us): the two-CTA tile won (2, 12, 2048) 48.0 against 51.3 and (1, 16, 4096) 119.8 / 126.5, and lost
    # (1, 12, 2048) 31.0 / 29.7: the rule stays.
    D64_CAUSAL_TWO_CTAS_SEQLEN_Q = (2048, 4096)
    D64_CAUSAL_TWO_CTAS_BELOW_WAVES = 4.0

    def heuristic_tiles(self, key, sm_count: int, grid=None) -> dict[str, int]:
        # Of two otherwise equal tiles, the one that rescales O lazily (it does strictly less work).
        # Likewise, for a causal problem, the one whose warpgroups skip the key tiles right of their rows.
        tiles = {**super().heuristic_tiles(key, sm_count, grid), "lazy_rescale": 1,
                 **({"wg_keys": 1} if key.causal else {})}
        if self.head_dim == 64 and key.causal_triangle and rows_32_byte_aligned(key):  # as measured
            low, high = self.D64_CAUSAL_TWO_CTAS_SEQLEN_Q
            wide_waves = key.batch_heads * math.ceil(key.seqlen_q / 192) / sm_count
            if low <= key.seqlen_q <= high and wide_waves < self.D64_CAUSAL_TWO_CTAS_BELOW_WAVES:
                return {**tiles, "block_m": 64, "ctas_per_sm": 2}
            if (grid or key).seqlen_q >= self.D64_CAUSAL_WIDE_FROM_ROWS:
                return {**tiles, "block_m": 192, "block_n": 128}
            return {**tiles, "block_m": 64, "ctas_per_sm": 3}
        if self.head_dim != 64 or key.causal or key.group != 1:
            return tiles
        if rows_32_byte_aligned(key):
            waves = key.batch_heads * math.ceil(key.seqlen_q / 192) / sm_count
            wide = (key.seqlen_q > self.D64_WIDE_ABOVE_SEQLEN_Q
                    and waves / math.ceil(waves) >= self.D64_WIDE_MIN_LAST_WAVE)
        else:
            wide = key.seqlen_q > self.D64_WIDE_ABOVE_SEQLEN_Q_UNALIGNED_ROWS
        if wide:
            return {**tiles, "block_m": 192}
        return {**tiles, "ctas_per_sm": 2}
    # Default tiles that spill, with the measurement that keeps them (see space.spill_note).
    MEASURED_SPILLS: ClassVar[dict] = {
        # Their eager twins (the defaults before the lazy rescale) spilled 24-64 B and 8-68 B and were
        # the fastest D64 non-causal tile at S >= 2k (causal >= 8k) and D256 tile at S = 1k-16k (grids
        # of 2026-11-26); the lazy twins ran 1.01-1.05x faster at those cells (benchmarks/NOTES.md,
        # 2026-11-27 16:10-, call 1). The lazy softmax's rounding sums (2026-11-27 18:48-) took the D64
        # causal tile from 108-136 B to 280-308 B; selecting its masked elements out (softmax.cuh,
        # 2026-11-27 20:53-) took it to 40-56 B.
        "fc_sm90_*_d64_*_m192_n128_s2_sch1_p1_kv1_lr1": "spills 60-80 B (non-causal) / 40-56 B (causal) at 3 WGs "
                                                   "of 160 registers; fastest D64 non-causal tile at S >= 1k (tune "
                                                   "of 2026-11-27 19:36) and causal at >= 8k (tune of 21:30)",
        "fc_sm90_*_d256_*_m128_n80_s2_sch1_p1_kv1_lr1": "spills 28-96 B (causal the most); fastest D256 non-causal "
                                                   "tile at S = 1k-8k (tune of 2026-11-27 19:36)",
    }

    @property
    def row_warpgroups(self) -> int:
        """Consumer warpgroups owning distinct query rows (64 each)."""
        return self.block_m // WGMMA_M

    @property
    def consumer_warpgroups(self) -> int:
        """Every consumer warpgroup of the CTA: the row warpgroups, times the key-split ones."""
        return self.row_warpgroups * self.key_split_wgs

    @property
    def v_head_dim(self) -> int:
        """V's and O's head dim in the kernel (head_dim unless the head_dim_v axis sets a smaller one)."""
        return self.head_dim_v or self.head_dim

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumer_warpgroups)

    def smem_bytes(self) -> int:
        # Q, K and V rings, each 1 KB aligned for the swizzled TMA layouts, plus barriers; a
        # persistent kernel adds a separate O staging buffer when it fits (traits.cuh kSeparateO),
        # else O reuses Q's buffer.
        def aligned(n: int) -> int:
            return -(-n // 1024) * 1024

        q = aligned(self.block_m * self.head_dim * self.element_bytes)
        o = aligned(self.block_m * self.v_head_dim * self.element_bytes)
        k = aligned(self.stages * self.block_n * self.head_dim * self.element_bytes)
        v = aligned(self.stages * self.block_n * (self.v_head_dim + self.v_pad_columns()) * self.element_bytes)
        base = q + k + v
        separate_o = self.persistent and base + o + SM90_BARRIER_BYTES <= self.smem_limit()
        lse_part = 4 * self.block_m if self.splits > 1 else 0  # split-KV: partial LSE per row
        return base + (o if separate_o else 1024) + 64 + 32 * self.stages + lse_part

    def v_pad_columns(self) -> int:
        """The ones atom past each V stage (64 columns) where the PV GEMM takes the row sums, else 0:
        traits.cuh kVPad, the same rule (overlapped tiles of Dv 64 or 128 without split-KV, where the
        atoms fit and leave where O is staged as it was)."""
        e = self.element_bytes
        unpadded = e * (self.block_m * self.head_dim + self.stages * self.block_n * (self.head_dim + self.v_head_dim))
        pad = e * self.stages * self.block_n * 64
        o = e * self.block_m * self.v_head_dim
        limit = self.smem_limit()
        separate_o = self.persistent and unpadded + o + SM90_BARRIER_BYTES <= limit
        fits = (unpadded + pad + (o if separate_o else 0) + SM90_BARRIER_BYTES <= limit
                and (separate_o or not self.persistent or self.block_m <= self.block_n))
        wanted = self.schedule >= 1 and self.splits == 1 and self.v_head_dim in (64, 128)
        return 64 if wanted and fits else 0

    def smem_limit(self) -> int:
        """Shared memory one CTA may take (traits.cuh kSmemLimit)."""
        if self.ctas_per_sm == 1:
            return SMEM_LIMIT_BYTES
        return SM90_SMEM_PER_SM // self.ctas_per_sm - SM90_SMEM_RESERVED_PER_CTA

    def accumulator_registers(self) -> int:
        # Per consumer thread: O (64 x Dv over 128 threads), S (64 x N), P as packed 16-bit (half of S).
        # The sequential schedule converts S to P in place (S is dead once packed; no next tile's S in
        # flight), so O and S bound it: ptxas, D64 192x192 at 128: 12-20 B spilled; 192x128 and D128
        # 128x192 none (benchmarks/NOTES.md, 2026-11-29 20:44-). (FA3's D64 non-causal 192x192 keeps the
        # overlap by passing P through shared memory, hopper/tile_size.h; measured slower here, same notes.)
        if self.schedule == 0:
            return self.v_head_dim // 2 + self.block_n // 2
        return self.v_head_dim // 2 + self.block_n // 2 + self.block_n // 4

    def register_budget(self) -> int:
        multi = SM90_REGISTER_SPLIT_MULTI_CTA.get(self.ctas_per_sm, {})  # empty for one CTA per SM
        if self.consumer_warpgroups in multi:
            return multi[self.consumer_warpgroups][1] - SM90_REGISTER_OVERHEAD
        splits = SM90_REGISTER_SPLIT_KV if self.splits > 1 else {}
        split = splits.get(self.consumer_warpgroups) or SM90_REGISTER_SPLIT.get(self.consumer_warpgroups)
        return split[1] - SM90_REGISTER_OVERHEAD if split else 0

    def validation_errors(self) -> list[str]:
        errors = super().validation_errors()
        if errors:
            return errors
        if self.block_m not in (64, 128, 192):
            errors.append(f"block_m={self.block_m} must be 64, 128 or 192 (64 rows per consumer warpgroup)")
        if self.key_split_wgs > 1:
            errors.extend(self._key_split_errors())
        if self.block_n % 16:
            errors.append(f"block_n={self.block_n} not a multiple of 16 (wgmma K of the PV product)")
        elif self.block_n not in SM90_BASE_WGMMA_N + SM90_EXTENDED_QK_N:
            errors.append(f"block_n={self.block_n} has no QK^T wgmma atom (base N {SM90_BASE_WGMMA_N}, extended "
                          f"{SM90_EXTENDED_QK_N}: flashcore/sm90/extended_shapes.cuh)")
        if self.v_head_dim not in SM90_BASE_WGMMA_N:
            errors.append(f"V's head dim {self.v_head_dim} is not a base wgmma N {SM90_BASE_WGMMA_N} (the PV GEMM's N)")
        if self.schedule == 2 and self.row_warpgroups < 2:
            errors.append("ping-pong (schedule=2) needs at least 2 consumer warpgroups (block_m >= 128)")
        if self.combine and self.splits == 1:
            errors.append("combine=1 (through global memory) is a split-KV combine: it needs splits > 1")
        if self.splits > SM90_MAX_CLUSTER and not self.combine:
            errors.append(f"splits={self.splits} > {SM90_MAX_CLUSTER}, the portable cluster size: combine through "
                          "global memory (combine=1)")
        if self.splits > 1:
            if self.persistent:
                errors.append("split-KV (splits > 1) runs one query tile per CTA: persistent must be 0")
            # The combine stages each CTA's fp32 partial O in the K ring (traits.cuh).
            if self.stages * self.block_n * self.element_bytes < self.block_m * 4:
                errors.append(f"split-KV stages the fp32 partial O in the K ring: stages * block_n * "
                              f"{self.element_bytes} must be >= block_m * 4")
        if self.head_dim_v and (self.head_dim_v >= self.head_dim or self.splits > 1 or self.pack_gqa):
            errors.append(f"head_dim_v={self.head_dim_v} (V's own head dim) must be below head_dim={self.head_dim}, "
                          "without split-KV or GQA packing (their epilogues take Q's head dim)")
        if self.pack_gqa and (self.block_m != WGMMA_M or self.persistent or self.ctas_per_sm > 1):
            errors.append("GQA packing (pack_gqa=1) fills one 64-row tile per CTA: block_m=64, persistent=0, "
                          "ctas_per_sm=1")
        if self.stream_k and (self.causal or self.outside_scope("stream_k")):
            errors.append("stream_k=1 cuts persistent non-causal tiles into equal key ranges: a non-causal variant "
                          "with persistent=1, splits=1, ctas_per_sm=1, pack_gqa=0, key_split_wgs=1")
        if self.wg_keys and (not self.causal or self.row_warpgroups < 2 or self.block_n >= self.block_m or
                             self.outside_scope("wg_keys")):
            errors.append("wg_keys=1 (per-warpgroup key ranges) serves causal tiles of several row warpgroups whose key "
                          "tiles are narrower than the query tile (block_n < block_m), with splits=1, ctas_per_sm=1, "
                          "pack_gqa=0, key_split_wgs=1, stream_k=0")
        if self.ctas_per_sm > 1:
            if self.consumer_warpgroups != 1 or self.splits > 1:
                errors.append(f"{self.ctas_per_sm} CTAs per SM (ctas_per_sm={self.ctas_per_sm}) need one consumer "
                              "warpgroup (block_m=64) and no split-KV: each CTA gets that share of the SM's registers")
            elif self.smem_bytes() > self.smem_limit():
                errors.append(f"shared memory {self.smem_bytes()} B > {self.smem_limit()} B, what each of "
                              f"{self.ctas_per_sm} CTAs on one SM may take")
        return errors

    def _key_split_errors(self) -> list[str]:
        errors = []
        if self.outside_scope("key_split_wgs"):
            errors.append(f"key_split_wgs={self.key_split_wgs}: key-split warpgroups share one 64-row query tile per "
                          "CTA: block_m=64, persistent=0, splits=1, ctas_per_sm=1, pack_gqa=0, lazy_rescale=0")
        if self.stages % self.key_split_wgs:
            errors.append(f"stages={self.stages} is not a multiple of key_split_wgs={self.key_split_wgs}: each "
                          "key-split warpgroup owns stages / key_split_wgs ring slots (key_split.cuh)")
        # Partials staged in the K and V rings (key_split.cuh kStagedFloats): O fragment, row max, row sum.
        staging = (self.key_split_wgs - 1) * 128 * (self.v_head_dim // 2 + 4) * 4
        rings = self.stages * self.block_n * (self.head_dim + self.v_head_dim) * self.element_bytes
        if staging > rings:
            errors.append(f"key-split partials ({staging} B) do not fit the K/V rings ({rings} B)")
        return errors

    def build_seconds(self) -> float:
        return self.BUILD_SECONDS_EXTENDED_SHAPES if self.extended_wgmma_shapes else self.BUILD_SECONDS

    def computes_head_dim(self, head_dim: int, head_dim_v: int | None = None) -> bool:
        """A variant with a V head dim of its own computes calls whose Q/K head dim pads to its
        head_dim and whose V head dim (given and different) is at most its head_dim_v."""
        if not self.head_dim_v:
            return super().computes_head_dim(head_dim, head_dim_v)
        return (head_dim_v is not None and padded_head_dim(head_dim, self.HEAD_DIMS) == self.head_dim
                and head_dim_v % 8 == 0 and 8 <= head_dim_v <= self.head_dim_v)

    def workspace_bytes(self, batch: int, heads: int, seqlen_q: int, group: int = 1, *,
                        seqlen_k: int = 0, sm_count: int = 0) -> int:
        """Device scratch of a call (kernel_ws.cuh workspace_bytes): the split-KV global combine's
        counters and partials (SplitGlobalWorkspace), the stream-K pieces' (StreamKWorkspace, for
        ``sm_count`` persistent CTAs over keys of ``seqlen_k``), the dynamic scheduler's counter,
        or none. ``group``: query heads per K/V head, which a packing variant puts in one tile's rows
        (its tiles: a K/V head's, of block_m / Gp queries each; pack_gqa.cuh)."""
        if self.pack_gqa:
            slots = 1 << (group - 1).bit_length()
            tiles = -(-seqlen_q // (self.block_m // slots)) * (heads // group) * batch
        else:
            tiles = -(-seqlen_q // self.block_m) * heads * batch
        def aligned(n: int) -> int:  # scratch parts start on 256-byte boundaries
            return -(-n // 256) * 256

        if self.combine:
            return aligned(4 * tiles) + aligned(4 * tiles * self.splits * self.block_m) + \
                4 * tiles * self.splits * self.block_m * self.head_dim
        if self.stream_k:  # a counter for uneven tiles; equal key ranges where whole tiles fill rounds unevenly
            if seqlen_q % self.block_m:
                return 4
            if seqlen_k >= SM90_STREAM_K_MIN_KEYS and sm_count > 0 and tiles > sm_count and tiles % sm_count:
                return aligned(4 * sm_count) + aligned(4 * (sm_count - 1) * 2 * self.block_m) + \
                    4 * (sm_count - 1) * 2 * self.block_m * self.v_head_dim
            return 0
        # The dynamic scheduler's tile counter: persistent causal kernels, and persistent multi-WG
        # ones whose last query tile has fewer rows than the block (and packed sequences, which
        # this signature does not see: FwdKernel::uneven_tiles).
        uneven = self.row_warpgroups > 1 and seqlen_q % self.block_m != 0
        return 4 if self.persistent and (self.causal or uneven) else 0

    def can_implement(self, problem) -> str | None:
        why = super().can_implement(problem)
        if why is None and self.combine and \
                self.workspace_bytes(problem.batch, problem.heads, problem.seqlen_q,
                                     getattr(problem, "group", 1)) > SM90_MAX_SPLIT_WORKSPACE:
            return SM90_SPLIT_WORKSPACE_REASON
        return why

    @property
    def extended_wgmma_shapes(self) -> bool:
        """Does the QK^T GEMM of this tile (its N is block_n) need a wgmma N outside CuTe's base set?
        (PV's N, V's head dim, is a base size for every sm90 head dim: validate() checks it.)"""
        return self.block_n not in SM90_BASE_WGMMA_N

    def template_params(self) -> dict:
        return super().template_params() | {
            "extended_wgmma_shapes": self.extended_wgmma_shapes,
            "consumer_warpgroups": self.consumer_warpgroups,
            "row_warpgroups": self.row_warpgroups,
            "key_split_wgs": self.key_split_wgs,
            "schedule_name": SM90_SCHEDULES[self.schedule],
            "overlap": "true" if self.schedule >= 1 else "false",
            "pingpong": "true" if self.schedule == 2 else "false",
            "is_persistent": "true" if self.persistent else "false",
            "splits": self.splits,
            "ctas_per_sm": self.ctas_per_sm,
            "split_global": "true" if self.combine else "false",
            "pack_gqa": "true" if self.pack_gqa else "false",
            "trailing_args": self._trailing_template_args(),
        }

    def _trailing_template_args(self) -> str:
        """FwdKernel's last template arguments (kLazyRescale, kStreamK, kWgKeys), up to the last one that
        is not at its default (false): a variant without them instantiates the kernel as before."""
        flags = [self.lazy_rescale, self.stream_k, self.wg_keys]
        while flags and not flags[-1]:
            flags.pop()
        return "".join(", true" if f else ", false" for f in flags)
