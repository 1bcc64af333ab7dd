"""The variant space: enumeration, filters, and the curated default set."""

from __future__ import annotations

import fnmatch
import itertools
from typing import Iterable, Iterator

from .config import DTYPES, FAMILIES, KernelConfig

# Default variants that spill (ptxas, H100 builds) and stay because they win shapes
# anyway: name glob -> the measurement (SM80 families: tuning_table-2026-11-25T1936-H100-83b947acafbe.json, 43
# shapes; benchmarks/NOTES.md). `flashcore build` warns only about spills not explained here.
def spill_note(name: str) -> str | None:
    """Why a default variant may spill (a measured reason from its family's ``MEASURED_SPILLS``), or None."""
    notes = (item for cls in FAMILIES.values() for item in cls.MEASURED_SPILLS.items())
    return next((note for pattern, note in notes if fnmatch.fnmatchcase(name, pattern)), None)


def all_configs(valid_only: bool = True, family: Iterable[str] | None = None, dtype: Iterable[str] | None = None,
                head_dim: Iterable[int] | None = None, causal: bool | None = None) -> Iterator[KernelConfig]:
    """The space (its valid configs by default). ``family``, ``dtype`` and ``head_dim`` (any of
    their values; None: all) and ``causal`` (None: both) leave out the families and problems they
    exclude before enumerating them: the whole space is ~1.9 M configs, most of them sm90's (tens
    of seconds)."""
    family = None if family is None else set(family)
    for cls in FAMILIES.values():
        if family is not None and cls.family not in family:
            continue
        for config in cls.space(dtype=dtype, head_dim=head_dim, causal=causal):
            if not valid_only or config.is_valid:
                yield config


def default_configs() -> list[KernelConfig]:
    """What `flashcore build` builds with no filter: each family's own default tiles
    (``KernelConfig.is_default``), the variants worth tuning on the H100, in the space's order.
    Made from each family's DEFAULT_TILES rather than by filtering all_configs(): a hundred
    configs instead of ~400k (seconds of every `flashcore build`)."""
    out: list[KernelConfig] = []
    for cls in FAMILIES.values():
        fields = cls.tile_fields()
        for dtype, head_dim, causal in itertools.product(DTYPES, cls.HEAD_DIMS, (False, True)):
            configs = [c for c in cls.problem_defaults(dtype, head_dim, causal) if c.is_valid]
            configs.sort(key=lambda c: tuple(cls.AXES[f.name].index(getattr(c, f.name)) for f in fields))
            out += configs
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
