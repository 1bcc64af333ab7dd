"""The loaded extension and its registry: one per process, created on first use.

Loading checks that the extension still matches what it claims to be, and refuses it otherwise
(dispatch must never run a kernel whose source has changed since it was compiled):

* the torch it was linked against (manifest.json, "linked") is the torch of this process;
* every variant it holds reports the hash of the variant rendered from the templates installed
  now (with the toolchain recorded at build time, so a machine without nvcc can check too), and
  its name still names a variant of a known family;
* it loads at all (a torch upgrade leaves undefined symbols).

Each failure raises StaleExtension, whose message ends in "rebuild: flashcore build".
Checking 60 variants renders 60 templates: ~30 ms.

The extension reports what each variant was compiled for (arch, min_cc); the registry offers
only variants the current device runs, and a build with none raises UnsupportedDevice naming
the archs built, the device and the fix. Dispatch serves the device current at load; a call on
another device of another capability is refused by the op's own per-variant check.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .build import EXTENSION_NAME, default_build_dir, read_manifest
from .eligibility import Target, no_runnable_build_message, runs_on
from .env import Environment
from .problem import Problem
from .registry import Registry
from .table import TuningTable

_lock = threading.Lock()
_runtime: "Runtime | None" = None

class ExtensionNotBuilt(RuntimeError):
    pass


class StaleExtension(RuntimeError):
    """The built extension no longer matches the sources or the torch of this process."""


class UnsupportedDevice(RuntimeError):
    """No CUDA device, or one that no built variant was compiled for."""


def stale_message(build_dir: Path, differences: list[str], limit: int = 6) -> str:
    shown = differences[:limit]
    if len(differences) > limit:
        shown.append(f"and {len(differences) - limit} more")
    return (
        f"the flashcore extension in {build_dir} was built from other sources/torch"
        f" ({'; '.join(shown)}): rebuild: flashcore build"
    )


def check_device() -> tuple[int, int]:
    """The compute capability of the current CUDA device; UnsupportedDevice when torch has no
    CUDA or sees no device. Which capabilities run the kernels is the built variants' call
    (their arch and min_cc), checked once the extension is loaded."""
    import torch

    if torch.version.cuda is None:
        raise UnsupportedDevice(
            f"flashcore_cutlass needs a CUDA GPU (sm_90: H100/H200), but torch {torch.__version__}"
            " is a CPU-only build: install a CUDA build of torch"
        )
    if not torch.cuda.is_available():
        raise UnsupportedDevice(
            "flashcore_cutlass needs a CUDA GPU (sm_90: H100/H200); torch sees none"
            " (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
    return tuple(torch.cuda.get_device_capability())


def parse_reported(entry: str) -> tuple[str, str, Target | None]:
    """(name, source hash, target) of one ``torch.ops.flashcore.variants()`` entry,
    "name:hash:arch:min_cc"; target None for an extension that does not report one (older)."""
    name, built_hash, *rest = entry.split(":") + [""]
    if len(rest) >= 2 and rest[1].isdecimal():
        return name, built_hash, Target(rest[0], int(rest[1]))
    return name, built_hash, None


def torch_differences(manifest: dict) -> list[str]:
    """How the torch of this process differs from the one the extension was linked against."""
    import torch

    linked = manifest.get("linked")
    if not linked or not linked.get("torch"):
        return ["the build records no torch for the extension (built by an older flashcore, or not linked)"]
    if linked["torch"] != torch.__version__:
        return [f"torch {linked['torch']} then, {torch.__version__} now"]
    return []


# Arguments of flashcore::fwd this Python passes; a binding built before one of them was added
# would fail every call with a schema error, so loading it asks for a rebuild instead.
FWD_ARGUMENTS = ("variant", "q", "k", "v", "scale", "out", "lse", "causal_offset", "left_offset", "softcap",
                 "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q", "max_seqlen_k", "bottom_right", "lse_unused")


FWD_DENSE_ARGUMENTS = ("variant", "q", "k", "v", "scale", "causal_offset", "lse_unused")


FWD_PACK_GQA_ARGUMENTS = ("variant", "q", "k", "v", "scale", "key_begin", "key_end", "softcap")

FWD_CACHED_ARGUMENTS = ("q", "k", "v", "mask", "scale", "gqa_ok", "lse_unused")

REMEMBER_DISPATCH_ARGUMENTS = ("q", "k", "v", "mask", "variant", "pack_gqa", "key_begin", "key_end")

# The binding's ops that this Python calls, with the arguments it passes.
BINDING_OPS = {"fwd": FWD_ARGUMENTS, "fwd_dense": FWD_DENSE_ARGUMENTS, "fwd_pack_gqa": FWD_PACK_GQA_ARGUMENTS,
               "fwd_cached": FWD_CACHED_ARGUMENTS, "remember_dispatch": REMEMBER_DISPATCH_ARGUMENTS,
               "forget_dispatch": (), "dispatched_shapes": ()}


def binding_differences(schemas: dict) -> list[str]:
    """How the loaded binding's ops (``schemas``: op name -> torch FunctionSchema, or None where
    the binding lacks the op) differ from the ones this Python calls (BINDING_OPS)."""
    differences = []
    for op, expected in BINDING_OPS.items():
        schema = schemas.get(op)
        if schema is None:
            differences.append(f"it has no flashcore::{op}")
            continue
        names = tuple(argument.name for argument in schema.arguments)
        if names != expected:
            differences.append(f"its flashcore::{op} takes ({', '.join(names)}), this flashcore passes "
                               f"({', '.join(expected)})")
    return differences


def programmatic_launch_from_env(environ) -> bool:
    """FLASHCORE_PDL: 1 (default) launches the sm90 kernels as programmatic dependents, 0 does not."""
    value = environ.get("FLASHCORE_PDL", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"FLASHCORE_PDL must be 0 or 1, got {value!r}: unset it, or set 0 to launch the sm90 "
                         "kernels without programmatic dependent launch")
    return value == "1"


def direct_call(overload):
    """The C++ callable behind a torch OpOverload: the same call without OpOverload.__call__'s
    Python frame (~1.5 us a call on the CPU box). Only where torch routes no call of this op
    through a Python dispatcher, else the overload itself."""
    op = getattr(overload, "_op", None)
    if op is None or getattr(overload, "_pyobj_dispatcher", None) is not None:
        return overload
    return op


def variant_differences(reported: list[str], manifest: dict) -> list[str]:
    """How the variants the loaded extension reports ("name:hash") differ from the variants
    rendered now from the installed templates, with the toolchain recorded in the manifest."""
    from flashcore_codegen.config import config_from_name
    from flashcore_codegen.render import render

    toolchain_id = (manifest.get("linked") or {}).get("toolchain_id")
    if toolchain_id is None:
        return ["the build records no toolchain (built by an older flashcore)"]
    differences = []
    for entry in reported:
        name, built_hash, target = parse_reported(entry)
        try:
            config = config_from_name(name)
        except ValueError:
            differences.append(f"{name} is no longer a variant of any family")
            continue
        try:
            current = render(config, toolchain_id=toolchain_id).source_hash
        except Exception as exc:  # InvalidConfig, a template that no longer takes the parameters
            differences.append(f"{name} no longer renders ({type(exc).__name__}: {exc})")
            continue
        if current != built_hash:
            differences.append(f"{name} changed (source hash {built_hash} built, {current} now)")
        elif target is None:
            differences.append(f"{name} reports no compile target (built by an older flashcore)")
    return differences


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
        self.capability = check_device()
        manifest = read_manifest(self.build_dir)
        differences = torch_differences(manifest)
        if differences:  # before loading: a .so linked against another torch may not load at all
            raise StaleExtension(stale_message(self.build_dir, differences))
        try:
            torch.ops.load_library(str(so))
        except (OSError, RuntimeError) as exc:
            raise StaleExtension(stale_message(self.build_dir, [f"it does not load: {exc}"])) from exc
        reported = list(torch.ops.flashcore.variants())
        differences = binding_differences({op: getattr(torch.ops.flashcore, op).default._schema
                                           for op in BINDING_OPS if hasattr(torch.ops.flashcore, op)})
        if not hasattr(torch.ops.flashcore, "set_programmatic_launch"):
            differences.append("it has no flashcore::set_programmatic_launch")
        differences += variant_differences(reported, manifest)
        if differences:
            raise StaleExtension(stale_message(self.build_dir, differences))
        entries = [parse_reported(entry) for entry in reported]
        self.hashes: dict[str, str] = {name: h for name, h, _ in entries}
        self.targets: dict[str, Target] = {name: target for name, _, target in entries}
        self.ids: dict[str, int] = {name: i for i, (name, _, _) in enumerate(entries)}
        if self.targets and not any(runs_on(t, self.capability) for t in self.targets.values()):
            raise UnsupportedDevice(
                no_runnable_build_message(str(self.build_dir), self.targets.values(), self.capability,
                                          torch.cuda.get_device_name())
            )
        self.env = Environment.current()
        # The toolchain the build records: today's sources rendered with it give the build's hashes.
        self.toolchain_id: str | None = (manifest.get("linked") or {}).get("toolchain_id")
        self.table = table if table is not None else TuningTable()
        self.registry = Registry(self.hashes, self.table, self.env, capability=self.capability, targets=self.targets)
        # Programmatic dependent launch of the sm90 kernels (on in the binding by default).
        self.set_programmatic_launch(programmatic_launch_from_env(os.environ))
        self.fwd = direct_call(torch.ops.flashcore.fwd.default)
        # The eager hot path's call: no window, softcap, preallocated results or packing.
        self.fwd_dense = direct_call(torch.ops.flashcore.fwd_dense.default)
        # Decoding with GQA: a group's query heads as the rows of one tile (api: problem.gqa_packed).
        self.fwd_pack_gqa = direct_call(torch.ops.flashcore.fwd_pack_gqa.default)
        # The eager hot path: shapes decided before, served from the binding's own dispatch cache
        # (api.attention: no Python between the call and the launch), and how decisions get there.
        self.fwd_cached = direct_call(torch.ops.flashcore.fwd_cached.default)
        self.remember_dispatch = direct_call(torch.ops.flashcore.remember_dispatch.default)

    @staticmethod
    def set_programmatic_launch(enabled: bool) -> bool:
        """Launch the sm90 kernels as programmatic dependents (PDL: a kernel's prologue overlaps the
        end of the previous kernel on the stream, whose results it waits for before reading
        anything) or not; returns the previous setting. On unless FLASHCORE_PDL=0."""
        import torch

        return bool(torch.ops.flashcore.set_programmatic_launch(bool(enabled)))

    @staticmethod
    def forget_dispatch() -> int:
        """Drop the binding's cached dispatch decisions (api's hot path); returns how many."""
        import torch

        return int(torch.ops.flashcore.forget_dispatch())

    def variant_id(self, problem: Problem) -> int:
        return self.ids[self.registry.choose(problem).variant]

    def has_candidates(self, problem: Problem) -> bool:
        """Could dispatch run ``problem`` here (a built variant computes it and can run it)?"""
        return bool(self.registry.candidates(problem))

    def run(self, variant: str, q, k, v, scale: float, out=None, lse=None, causal_offset: int = 0,
            left_offset: int | None = None, softcap: float = 0.0, lse_unused: bool = False):
        """Run one named variant (the tuner and tests use this to bypass dispatch). k/v may have
        fewer heads than q (grouped-query attention); ``causal_offset`` aligns a causal variant's
        mask: row r sees key c iff c <= r + causal_offset (0: top-left, Sk - Sq: bottom-right),
        and ``left_offset`` adds a window's left edge: c >= r + left_offset. ``softcap``: 0 =
        off, else softmax(cap * tanh(scale * s / cap)). ``lse_unused``: the caller discards the returned
        lse, which the kernel may then leave inexact (as attention() without return_lse runs)."""
        return self.fwd(self.ids[variant], q, k, v, scale, out, lse, causal_offset, left_offset, softcap, None, None, 0,
                        0, False, lse_unused)

    def run_pack_gqa(self, variant: str, q, k, v, scale: float, key_begin: int, key_end: int, softcap: float = 0.0):
        """Run one named unmasked variant on a decoding call with grouped-query attention (one
        query row per head) as attention() does (:func:`problem.gqa_packed`): each key/value
        head's group of query heads as the rows of one problem, over keys [key_begin, key_end)."""
        return self.fwd_pack_gqa(self.ids[variant], q, k, v, scale, key_begin, key_end, softcap)


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


# Dispatch decisions per exact shape (api._shape_key: dtype, mask, B, H, Sq, D, Hkv, Sk, aligned16)
# -> variant id, or (variant id, key_begin, key_end) for a decoding call with GQA packed into rows
# (api._dispatch), filled by the API's Python path (one dict lookup per call); the calls without a
# window or softcap find them in the binding's own cache first (Runtime.fwd_cached, filled with
# Runtime.remember_dispatch). Owned here with the registry's per-key cache, so that forgetting
# decisions needs no import of the API.
shape_cache: dict[tuple, int | tuple[int, int, int]] = {}


def forget_decisions(rt: "Runtime | None" = None) -> None:
    """Drop cached dispatch decisions (after tuning), in the registry and per shape; the
    extension stays loaded."""
    for runtime in {r for r in (rt, _runtime) if r is not None}:
        runtime.registry.invalidate()
        runtime.forget_dispatch()
    shape_cache.clear()
