"""The variant space: enumeration, filters, and the curated default set."""

from __future__ import annotations

import fnmatch
from typing import Iterable, Iterator

from .config import FAMILIES, KernelConfig

# What `flashcore build` builds with no filter: the variants worth tuning on the H100.
# One representative per rung of the ladder (for the ladder table), plus the pipelined tiles
# that won or came close in benchmarks/results (see benchmarks/NOTES.md), per head dim.
# The ladder's lower rungs are built only where the ladder table measures them.
DEFAULT_LADDER_PROBLEMS = {("fp16", 64, False), ("bf16", 128, False)}
DEFAULT_LADDER = {
    "scalar": {"block_m": 16, "warps": 4},
    "mma": {"block_m": 64, "block_n": 64, "warps": 4},
}
# (block_m, block_n, warps, stages, lean) per head dim, for every dtype and mask: the tiles that
# won or came within ~5 % somewhere in the sweep of every valid bf16 non-causal pipelined tile on
# the H100 (benchmarks/NOTES.md, 2026-11-25; tuning_table-2026-11-25T1829-*.json), one block_m=64
# tile per head dim for short query sequences, and the register-lean tiles that beat their plain
# twins (D64 128x128 at 2-3 stages, D128 128x64 at 1 stage; tuning_table-*-lean-experiment.json).
DEFAULT_PIPELINED_TILES = {
    64: [(128, 128, 4, 1, 0), (128, 64, 4, 2, 0), (128, 32, 4, 2, 0), (64, 64, 4, 2, 0), (64, 128, 4, 3, 0),
         (128, 128, 4, 2, 1), (128, 128, 4, 3, 1)],
    128: [(128, 64, 4, 2, 0), (128, 64, 4, 1, 0), (64, 64, 4, 2, 0), (128, 64, 4, 1, 1)],
    256: [(64, 64, 4, 1, 0), (128, 64, 8, 2, 0), (64, 32, 4, 2, 0)],
}


def all_configs(valid_only: bool = True) -> Iterator[KernelConfig]:
    for cls in FAMILIES.values():
        for config in cls.space():
            if not valid_only or config.is_valid:
                yield config


def default_configs() -> list[KernelConfig]:
    out = []
    for config in all_configs():
        if config.family in DEFAULT_LADDER:
            if (config.dtype, config.head_dim, config.causal) not in DEFAULT_LADDER_PROBLEMS:
                continue
            want = DEFAULT_LADDER[config.family]
            if all(getattr(config, k) == v for k, v in want.items()):
                out.append(config)
        elif config.family == "pipelined":
            tile = (config.block_m, config.block_n, config.warps, config.stages, config.lean)
            if tile in DEFAULT_PIPELINED_TILES[config.head_dim]:
                out.append(config)
    return out


def select(
    configs: Iterable[KernelConfig],
    family: Iterable[str] | None = None,
    dtype: Iterable[str] | None = None,
    head_dim: Iterable[int] | None = None,
    causal: bool | None = None,
    only: Iterable[str] | None = None,
) -> list[KernelConfig]:
    """Filter configs; each filter is ignored when None, and a list means any of its values."""
    family, dtype, head_dim, only = (set(x) if x else None for x in (family, dtype, head_dim, only))
    out = []
    for c in configs:
        if family and c.family not in family:
            continue
        if dtype and c.dtype not in dtype:
            continue
        if head_dim and c.head_dim not in head_dim:
            continue
        if causal is not None and c.causal != causal:
            continue
        if only and not any(fnmatch.fnmatchcase(c.name, pattern) for pattern in only):
            continue
        out.append(c)
    return sorted(out, key=lambda c: c.name)
