"""The kernel ladder of the seed roadmap, one config class per generated family.

Adding a family = one subclass here (fields with ``tile(...)``, ``AXES``, resource model,
extra validation) plus ``templates/<family>.cu.j2``. Nothing else names families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config import KernelConfig, tile

# Keys per tile of the scalar kernel: one key per lane of a warp.
SCALAR_BLOCK_N = 32
# Rows of the SM80 m16n8k16 MMA atom: one warp covers 16 query rows per MMA tile.
MMA_ATOM_M = 16
# Columns of a swizzled shared-memory atom (64 halfs = 128 B, the ldmatrix/cp.async sweet spot).
SMEM_ATOM_COLS = 64


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
    AXES: ClassVar[dict] = {"block_m": (16, 32), "warps": (4,)}

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

    def kv_buffers(self) -> int:
        return 1

    def smem_bytes(self) -> int:
        elems = self.block_m * self.head_dim + 2 * self.kv_buffers() * self.block_n * self.head_dim
        return elems * self.element_bytes

    def accumulator_registers(self) -> int:
        return (self.block_m * self.head_dim + self.block_m * self.block_n) // self.threads

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
    AXES: ClassVar[dict] = {"block_m": (64, 128), "block_n": (64,), "warps": (4,)}


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
    AXES: ClassVar[dict] = {
        "block_m": (64, 128),
        "block_n": (32, 64, 128),
        "warps": (4, 8),
        "stages": (1, 2, 3),
        "lean": (0, 1),
    }

    def kv_buffers(self) -> int:
        return self.stages
