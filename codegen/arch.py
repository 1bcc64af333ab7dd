"""Compile targets of the kernel families, and which GPUs run them.

A target is nvcc's spelling: ``sm_XY`` or ``sm_XYa``. A cubin for ``sm_XY`` runs on devices of
major capability X and minor >= Y; an arch-specific target (the ``a`` suffix, needed for wgmma
and setmaxnreg) runs on exactly X.Y. The code of a family may need less than the target it is
compiled for (SM80 kernels compiled for sm_90a): ``min_cc`` (major * 10 + minor) records what
the code needs, and a device must satisfy both. The binding applies the same rule in C++
(``arch_error`` in flashcore_cutlass/csrc/torch_binding.cpp).

Torch-free: the generator and the CPU tools use it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_TARGET = re.compile(r"^sm_(\d+)(\d)(a?)$")


class Target(NamedTuple):
    major: int
    minor: int
    arch_specific: bool  # the "a" suffix: exactly this capability


def parse(arch: str) -> Target:
    """``"sm_90a"`` -> Target(9, 0, True); ValueError for anything else."""
    m = _TARGET.match(arch)
    if not m:
        raise ValueError(f"not an nvcc compile target: {arch!r} (expected sm_<major><minor>[a], e.g. sm_90a)")
    return Target(int(m.group(1)), int(m.group(2)), bool(m.group(3)))


def gencode_flag(arch: str) -> str:
    """The nvcc flag that compiles a cubin for ``arch`` (no PTX: nothing is JIT-compiled later)."""
    parse(arch)
    return f"-gencode=arch=compute_{arch[3:]},code={arch}"


def runs_on(arch: str, min_cc: int, capability: tuple[int, int]) -> bool:
    """Can a device of compute capability ``(major, minor)`` run code compiled for ``arch`` that
    needs ``min_cc``?"""
    target = parse(arch)
    major, minor = capability
    if major * 10 + minor < min_cc or major != target.major:
        return False
    return minor == target.minor if target.arch_specific else minor >= target.minor


def capability_name(capability: tuple[int, int]) -> str:
    """(8, 6) -> "sm_86", how nvcc and the error messages name a device's capability."""
    return f"sm_{capability[0]}{capability[1]}"


def describe(arch: str) -> str:
    """What runs ``arch``, for error messages: "sm_90a (compute capability 9.0 only: H100/H200)"."""
    target = parse(arch)
    cc = f"{target.major}.{target.minor}"
    if target.arch_specific:
        where = f"compute capability {cc} only" + (": H100/H200" if (target.major, target.minor) == (9, 0) else "")
    else:
        where = f"compute capability {cc} to {target.major}.9"
    return f"{arch} ({where})"
