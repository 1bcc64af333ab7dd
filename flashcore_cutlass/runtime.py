"""The loaded extension and its registry: one per process, created on first use."""

from __future__ import annotations

import threading
from pathlib import Path

from .build import EXTENSION_NAME, default_build_dir
from .env import Environment
from .problem import Problem
from .registry import Registry
from .table import TuningTable

_lock = threading.Lock()
_runtime: "Runtime | None" = None


class ExtensionNotBuilt(RuntimeError):
    pass


class Runtime:
    """Variants compiled into the loaded extension, with the registry that picks among them."""

    def __init__(self, build_dir: Path | None = None, table: TuningTable | None = None):
        import torch

        self.build_dir = Path(build_dir or default_build_dir())
        so = self.build_dir / EXTENSION_NAME
        if not so.exists():
            raise ExtensionNotBuilt(
                f"no flashcore extension at {so}; build the kernels first: flashcore build"
                " (or set FLASHCORE_BUILD_DIR to where they were built)"
            )
        if not torch.cuda.is_available():
            raise RuntimeError("flashcore_cutlass needs a CUDA GPU (sm_90); torch sees none")
        torch.ops.load_library(str(so))
        entries = [entry.split(":", 1) for entry in torch.ops.flashcore.variants()]
        self.hashes: dict[str, str] = {name: h for name, h in entries}
        self.ids: dict[str, int] = {name: i for i, (name, _) in enumerate(entries)}
        self.env = Environment.current()
        self.table = table if table is not None else TuningTable()
        self.registry = Registry(self.hashes, self.table, self.env)
        self.fwd = torch.ops.flashcore.fwd.default

    def variant_id(self, problem: Problem) -> int:
        return self.ids[self.registry.choose(problem).variant]

    def run(self, variant: str, q, k, v, scale: float, out=None, lse=None):
        """Run one named variant (the tuner and tests use this to bypass dispatch)."""
        return self.fwd(self.ids[variant], q, k, v, scale, out, lse)


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


def forget_decisions(rt: "Runtime | None" = None) -> None:
    """Drop cached dispatch decisions (after tuning), in the registry and in the API's
    per-shape cache; the extension stays loaded."""
    from . import api

    for runtime in {r for r in (rt, _runtime) if r is not None}:
        runtime.registry.invalidate()
    api._dispatch_cache.clear()
