"""Render configs into CUDA sources: deterministic, and rewriting only files whose text changed
(so ninja rebuilds only what changed)."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jinja2

from .config import FAMILIES, KernelConfig
from . import toolchain


def _template_dir() -> Path:
    """templates/ beside the package when installed from a wheel (package data), else the
    repository's top-level templates/ (a source checkout or an editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "include" / "flashcore").is_dir():
            return candidate
    raise FileNotFoundError(f"flashcore templates not found beside {here}: reinstall flashcore-cutlass")


TEMPLATE_DIR = _template_dir()
INCLUDE_DIR = TEMPLATE_DIR / "include"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,  # a missing parameter is an error, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def cutlass_version() -> str:
    """Version of the nvidia-cutlass wheel that supplies the CuTe headers."""
    try:
        return importlib.metadata.version("nvidia-cutlass")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _glob_regex(pattern: str) -> re.Pattern:
    """A HEADERS pattern as a regex over posix paths: "**" spans directories, "*" and "?" do not."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts) + r"\Z")


def family_headers(family: str) -> list[Path]:
    """The files under INCLUDE_DIR that the family's HEADERS patterns match, sorted."""
    patterns = [_glob_regex(p) for p in FAMILIES[family].HEADERS]
    return sorted(
        path
        for path in INCLUDE_DIR.rglob("*")
        if path.is_file() and any(p.match(path.relative_to(INCLUDE_DIR).as_posix()) for p in patterns)
    )


@functools.lru_cache(maxsize=32)
def headers_digest(family: str, toolchain_id: str | None = None) -> str:
    """Hash of how a family's variants compile: the headers its HEADERS match, its nvcc flags,
    the CUTLASS version and the toolchain (nvcc's version and the digest of the CUTLASS include
    dir actually used, see :func:`flashcore_codegen.toolchain.identity`). Any of them changing
    changes every variant of the family's hash (and makes its older tuning rows stale); a header
    of another family does not.

    ``toolchain_id`` defaults to this machine's toolchain; the runtime passes the one recorded
    in the build's manifest, so that a machine without nvcc re-derives the hashes of the
    templates as they are now, compiled with the toolchain the extension was built with."""
    if toolchain_id is None:
        toolchain_id = toolchain.identity()
    h = hashlib.sha256(" ".join(FAMILIES[family].NVCC_FLAGS).encode() + cutlass_version().encode())
    h.update(b"\0toolchain\0" + toolchain_id.encode() + b"\0")
    for path in family_headers(family):
        h.update(path.relative_to(INCLUDE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class RenderedSource:
    config: KernelConfig
    text: str
    source_hash: str

    @property
    def filename(self) -> str:
        return f"{self.config.name}.cu"


def render(config: KernelConfig, toolchain_id: str | None = None) -> RenderedSource:
    """Render one (validated) config. The hash covers the source, its family's headers and flags,
    and the toolchain (``toolchain_id``, default: this machine's; see :func:`headers_digest`)."""
    config.check()
    template = _environment().get_template(config.template)
    params = config.template_params()
    unhashed = template.render(**params, source_hash="")
    if toolchain_id is None:  # resolved here so that the digest's cache keys on the real identity
        toolchain_id = toolchain.identity()
    digest = hashlib.sha256((unhashed + headers_digest(config.family, toolchain_id)).encode()).hexdigest()[:16]
    return RenderedSource(config, template.render(**params, source_hash=digest), digest)


def write_if_changed(path: Path, text: str) -> bool:
    """Write text to path unless it already holds exactly that; return whether it was written."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


@dataclass(frozen=True)
class GenerationResult:
    sources: list[RenderedSource]
    written: list[Path]
    removed: list[Path]


def generate(configs: Iterable[KernelConfig], out_dir: Path, prune: bool = False) -> GenerationResult:
    """Render configs into out_dir/<name>.cu. With prune, delete generated sources not in the set."""
    out_dir = Path(out_dir)
    sources = [render(c) for c in sorted(set(configs), key=lambda c: c.name)]
    written = [out_dir / s.filename for s in sources if write_if_changed(out_dir / s.filename, s.text)]
    removed = []
    if prune:
        keep = {s.filename for s in sources}
        for stale in sorted(out_dir.glob("fc_*.cu")):
            if stale.name not in keep:
                stale.unlink()
                removed.append(stale)
    return GenerationResult(sources, written, removed)
