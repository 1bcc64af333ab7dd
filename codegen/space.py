"""The variant space: enumeration, filters, and the curated default set."""

from __future__ import annotations

import fnmatch
from typing import Iterable, Iterator

from .config import FAMILIES, KernelConfig

# Default variants that spill (ptxas, H100 builds) and stay because they win shapes
# anyway: name glob -> the measurement (SM80 families: tuning_table-2026-11-25T1936-H100-83b947acafbe.json, 43
# shapes; benchmarks/NOTES.md). `flashcore build` warns only about spills not explained here.
MEASURED_SPILLS = {
    "fc_pipelined_*_d128_*_m128_n64_w4_s2_lean0": "spills 44-68 B; fastest at 12 of the 24 D128 keys",
    "fc_pipelined_*_d128_*_m128_n64_w4_s1_lean1": "spills 36-44 B; fastest at 1 D128 key, within 3 % at 10",
    "fc_pipelined_*_d64_*_m128_n128_w4_s2_lean1": "spills 20-48 B; fastest at 7 of the 19 D64 keys",
    "fc_pipelined_*_d64_causal_m128_n128_w4_s3_lean1": "spills 24-32 B; fastest at 2 D64 causal keys",
    "fc_mma_fp16_d64_full_m64_n64_w4": "spills 4 B; the ladder's step-2 rung, built to be measured, never to win",
    "fc_sm90_*_d256_*_m128_n64_s2_sch1_p0": "spills 56 B; fastest at all 12 D256 grid keys, 1.7-2.4x the pipelined "
                                             "family (tuning_table-2026-11-25T2249-H100-b819637d379d.json)",
}


def spill_note(name: str) -> str | None:
    """Why a default variant may spill (a measured reason), or None."""
    return next((note for pattern, note in MEASURED_SPILLS.items() if fnmatch.fnmatchcase(name, pattern)), None)


def all_configs(valid_only: bool = True) -> Iterator[KernelConfig]:
    for cls in FAMILIES.values():
        for config in cls.space():
            if not valid_only or config.is_valid:
                yield config


def default_configs() -> list[KernelConfig]:
    """What `flashcore build` builds with no filter: each family's own default tiles
    (``KernelConfig.is_default``), the variants worth tuning on the H100."""
    return [c for c in all_configs() if c.is_default()]


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
