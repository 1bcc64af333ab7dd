"""How kernel translation units are compiled, and with what: the nvcc flags (common ones here,
each family adds its target, see ``KernelConfig.NVCC_FLAGS``), the nvcc found and the CUTLASS
headers used. All of it is part of each variant's source hash.

Torch-free (the generator must import without torch). Every query of nvcc runs once per
process and per nvcc path (``functools.lru_cache``): a preflight or a render costs at most three
short nvcc calls (~25 ms together).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .arch import gencode_flag

# Flags of every kernel translation unit; a family's full flags are nvcc_flags(its ARCH, ...).
COMMON_NVCC_FLAGS = (
    "-std=c++17",
    "-O3",
    "--use_fast_math",
    "-DNDEBUG",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-fPIC",
    "-Xptxas=-v",  # resource report (registers, spills) kept in obj/<variant>.o.log
)


def nvcc_flags(arch: str, *extra: str) -> tuple[str, ...]:
    """A family's nvcc flags: the common ones, the cubin for ``arch``, then its own ``extra``."""
    return COMMON_NVCC_FLAGS + (gencode_flag(arch),) + tuple(extra)


MIN_NVCC = (12, 3)


class ToolchainError(RuntimeError):
    """nvcc or the CUTLASS headers are missing or unusable (the message says how to fix it)."""


def find_nvcc() -> Path:
    """``$NVCC``, else ``nvcc`` on PATH, else /usr/local/cuda/bin/nvcc (possibly a wrapper)."""
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise ToolchainError("nvcc not found: install the CUDA toolkit (>= 12.3) or set NVCC=/path/to/nvcc")


@dataclass(frozen=True)
class NvccInfo:
    path: Path  # as found (may be a wrapper script or a symlink)
    version: str  # "13.0.88"
    release: tuple[int, int]  # (13, 0)
    version_text: str  # the identifying lines of `nvcc --version` (part of the source hash)
    cuda_home: Path | None  # the toolkit nvcc really runs from (wrappers resolved)
    gpu_codes: tuple[str, ...]  # `nvcc --list-gpu-code`: sm_90, ...

    @property
    def supports_sm90a(self) -> bool:
        # nvcc lists the family (sm_90 / compute_90), never the arch-specific "a" variant;
        # sm_90a exists in every nvcc >= 12.0 that knows sm_90.
        codes = set(self.gpu_codes)
        return bool(codes & {"sm_90a", "compute_90a"}) or ("sm_90" in codes and self.release >= (12, 0))


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"could not run {' '.join(cmd)}: {exc}") from exc
    return proc.stdout + proc.stderr


def _cuda_home_of(nvcc: Path) -> Path | None:
    """Where nvcc really lives. `nvcc --version` does not say, and nvcc may be a wrapper script
    (``exec /usr/local/cuda-13.0/bin/nvcc "$@"``): a dry run prints the toolkit's TOP."""
    out = _run([str(nvcc), "-v", "--dryrun", "-c", "flashcore_probe.cu", "-o", os.devnull])
    m = re.search(r"^#\$ TOP=(.+)$", out, re.MULTILINE)
    candidates = []
    if m:
        candidates.append(Path(m.group(1).strip()).resolve())
    candidates.append(Path(os.path.realpath(nvcc)).parent.parent)
    for home in candidates:
        if (home / "include" / "cuda_runtime.h").exists():
            return home
    return candidates[0] if candidates else None


@functools.lru_cache(maxsize=8)
def _nvcc_info(path: str) -> NvccInfo:
    nvcc = Path(path)
    text = _run([str(nvcc), "--version"])
    m = re.search(r"release (\d+)\.(\d+), V([\d.]+)", text)
    if not m:
        raise ToolchainError(f"{nvcc} --version printed no CUDA release:\n{text.strip()}")
    ident = "\n".join(line.strip() for line in text.splitlines() if line.startswith(("Cuda compilation", "Build ")))
    codes = tuple(_run([str(nvcc), "--list-gpu-code"]).split())
    return NvccInfo(
        path=nvcc,
        version=m.group(3),
        release=(int(m.group(1)), int(m.group(2))),
        version_text=ident,
        cuda_home=_cuda_home_of(nvcc),
        gpu_codes=codes,
    )


def nvcc_info(nvcc: Path | None = None) -> NvccInfo:
    """Version, toolkit home and GPU codes of ``nvcc`` (default: :func:`find_nvcc`), cached."""
    return _nvcc_info(str(nvcc or find_nvcc()))


def cutlass_include_dir() -> Path:
    """CuTe/CUTLASS headers from the nvidia-cutlass wheel (found without importing it)."""
    spec = importlib.util.find_spec("cutlass_library")
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainError("nvidia-cutlass is not installed: pip install nvidia-cutlass==4.2.0.0")
    include = Path(list(spec.submodule_search_locations)[0]) / "source" / "include"
    if not (include / "cute" / "tensor.hpp").exists():
        raise ToolchainError(f"CUTLASS headers not found under {include} (no cute/tensor.hpp): reinstall nvidia-cutlass")
    return include.resolve()


def cutlass_header_version(include: Path) -> str:
    """"4.2.0" from <include>/cutlass/version.h, "unknown" when it cannot be read."""
    try:
        text = (Path(include) / "cutlass" / "version.h").read_text()
    except OSError:
        return "unknown"
    parts = [re.search(rf"#define CUTLASS_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(p.group(1) for p in parts) if all(parts) else "unknown"


@functools.lru_cache(maxsize=8)
def cutlass_digest(include: Path) -> str:
    """Identity of the CUTLASS headers actually compiled against.

    Covers the full text of cutlass/version.h and every header's path (relative to the include
    dir) and size. Not the contents of all ~800 headers (27 MB): reading and hashing them costs
    ~100 ms cold per process, for every render; version.h changes with every CUTLASS release,
    and the (path, size) listing (~5 ms) catches added, removed and most edited headers. Not
    where the headers are installed: the same headers compile the same kernels from any
    directory, so a measurement keyed on this hash holds on every machine that has them. File mtimes are left out on purpose:
    reinstalling the same wheel must not rebuild everything. An in-place edit that keeps a
    header's size is not detected (rebuild with --prune or a fresh build dir after such edits).
    """
    include = Path(include).resolve()
    h = hashlib.sha256()
    try:
        h.update((include / "cutlass" / "version.h").read_bytes())
    except OSError:
        h.update(b"no cutlass/version.h")
    for sub in ("cute", "cutlass"):
        root = include / sub
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in sorted(filenames):
                p = os.path.join(dirpath, fname)
                h.update(f"{os.path.relpath(p, include)}:{os.path.getsize(p)}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def identity() -> str:
    """The toolchain part of every source hash: nvcc's version and the CUTLASS headers' digest.
    Without nvcc or CUTLASS (a machine that only generates sources) the missing part reads
    "none": such sources hash differently from ones rendered where the toolchain exists."""
    try:
        nvcc = nvcc_info().version_text
    except ToolchainError:
        nvcc = "none"
    try:
        cutlass = cutlass_digest(cutlass_include_dir())
    except ToolchainError:
        cutlass = "none"
    return f"nvcc={nvcc}\ncutlass={cutlass}"


def clear_caches() -> None:
    """Forget every cached query (tests; a process that installs a toolkit)."""
    _nvcc_info.cache_clear()
    cutlass_digest.cache_clear()
    identity.cache_clear()

