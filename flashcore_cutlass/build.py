"""Build generated variants into one torch extension with ninja.

Layout of a build directory::

    src/<variant>.cu          generated sources (flashcore_codegen.render, rewritten only when changed)
    obj/<variant>.o (.log)    one nvcc object per variant; the log keeps ptxas' resource report
    obj/torch_binding.o       the one torch-aware translation unit
    flashcore_ext.so          everything that compiled, linked together
    manifest.json             what the .so holds: variants, source hashes, registers, spills

Kernel objects never include torch headers, so they compile anywhere nvcc and the CUTLASS
headers exist (CI checks them without a GPU). A variant that fails to compile is reported
with its nvcc error and left out; the rest still link.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from flashcore_codegen.config import KernelConfig, config_from_name
from flashcore_codegen.render import INCLUDE_DIR, generate
from flashcore_codegen.toolchain import NVCC_FLAGS

from .paths import cache_dir

EXTENSION_NAME = "flashcore_ext.so"
BINDING_SOURCE = Path(__file__).resolve().parent / "csrc" / "torch_binding.cpp"
GB_PER_NVCC_JOB = 4.5  # peak RSS of one CuTe translation unit in cicc, measured ~3-4 GB



class BuildError(RuntimeError):
    pass


def default_build_dir() -> Path:
    env = os.environ.get("FLASHCORE_BUILD_DIR")
    return Path(env).expanduser() if env else cache_dir() / "build"


def cutlass_include_dir() -> Path:
    """CuTe/CUTLASS headers from the nvidia-cutlass wheel (found without importing it)."""
    spec = importlib.util.find_spec("cutlass_library")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("nvidia-cutlass is not installed: pip install nvidia-cutlass==4.2.0.0")
    include = Path(list(spec.submodule_search_locations)[0]) / "source" / "include"
    if not (include / "cute" / "tensor.hpp").exists():
        raise BuildError(f"CUTLASS headers not found under {include}")
    return include


def find_nvcc() -> Path:
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise BuildError("nvcc not found: install the CUDA toolkit (>= 12.3) or set NVCC")


def find_ninja() -> str:
    ninja = shutil.which("ninja")
    if ninja:
        return ninja
    try:
        import ninja as ninja_pkg  # the PyPI wheel ships a binary

        return str(Path(ninja_pkg.BIN_DIR) / "ninja")
    except ImportError as exc:
        raise BuildError("ninja not found: pip install ninja") from exc


def default_jobs() -> int:
    """One nvcc per core, but no more than memory allows (~4.5 GB per CuTe translation unit)."""
    cores = os.cpu_count() or 1
    try:
        meminfo = Path("/proc/meminfo").read_text()
        avail_kb = int(re.search(r"MemAvailable:\s+(\d+)", meminfo).group(1))
        by_memory = int(avail_kb / 1024**2 / GB_PER_NVCC_JOB)
    except (OSError, AttributeError):
        by_memory = cores
    return max(1, min(cores, by_memory))


@dataclass
class Resources:
    registers: int | None = None
    spill_stores: int = 0
    spill_loads: int = 0
    stack_bytes: int = 0

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


def parse_ptxas(log: str) -> Resources:
    """Read ptxas -v output of a kernel object (the largest kernel entry wins)."""
    res = Resources()
    for m in re.finditer(r"Used (\d+) registers", log):
        res.registers = max(res.registers or 0, int(m.group(1)))
    for m in re.finditer(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log):
        res.stack_bytes = max(res.stack_bytes, int(m.group(1)))
        res.spill_stores = max(res.spill_stores, int(m.group(2)))
        res.spill_loads = max(res.spill_loads, int(m.group(3)))
    return res


@dataclass
class BuildResult:
    build_dir: Path
    built: dict[str, str] = field(default_factory=dict)  # variant -> source hash (compiled ok)
    failed: dict[str, str] = field(default_factory=dict)  # variant -> compiler output
    resources: dict[str, Resources] = field(default_factory=dict)
    compile_seconds: dict[str, float] = field(default_factory=dict)  # of objects compiled this run
    wall_seconds: float = 0.0
    extension: Path | None = None


def _torch_flags() -> tuple[list[str], list[str]]:
    """Include and link flags for the binding (the only torch-aware unit)."""
    import torch
    from torch.utils import cpp_extension

    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    cuda_home = Path(cpp_extension.CUDA_HOME or find_nvcc().parent.parent)
    includes.append(f"-I{cuda_home / 'include'}")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cflags = includes + [f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    torch_lib = Path(torch.__file__).parent / "lib"
    ldflags = [
        f"-L{torch_lib}",
        f"-Wl,-rpath,{torch_lib}",
        "-lc10",
        "-lc10_cuda",
        "-ltorch",
        "-ltorch_cpu",
        "-ltorch_cuda",
        f"-L{cuda_home / 'lib64'}",
        "-lcudart",
    ]
    return cflags, ldflags


def _q(path: Path | str) -> str:
    """Escape a path for a ninja file."""
    return str(path).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def write_ninja(build_dir: Path, variants: list[str], link_objects: list[str] | None) -> Path:
    nvcc = find_nvcc()
    lines = [
        "ninja_required_version = 1.10",
        f"nvcc = {nvcc}",
        f"nvcc_flags = {' '.join(NVCC_FLAGS)} -I{INCLUDE_DIR} -I{cutlass_include_dir()}",
        # No header depfile on purpose: each generated .cu embeds a hash of the headers, the
        # flags and the CUTLASS version, so any change that matters rewrites the .cu itself.
        # Header mtimes alone (a fresh checkout, a reinstalled wheel) then never rebuild.
        "rule nvcc",
        "  command = rm -f $out && $nvcc $nvcc_flags -c $in -o $out > $out.log 2>&1 || (cat $out.log; exit 1)",
        "  description = nvcc $name",
        "",
    ]
    for name in variants:
        lines.append(f"build obj/{name}.o: nvcc src/{name}.cu")
        lines.append(f"  name = {name}")
    lines.append("build objects: phony " + " ".join(f"obj/{n}.o" for n in variants))
    if link_objects is not None:
        cflags, ldflags = _torch_flags()
        cxx = os.environ.get("CXX", "c++")
        lines += [
            "",
            f"cxx = {cxx}",
            f"binding_flags = -std=c++17 -O2 -fPIC -I{INCLUDE_DIR} {' '.join(cflags)}",
            f"ldflags = {' '.join(ldflags)}",
            "rule cxx",
            "  command = $cxx $binding_flags -MD -MF $out.d -c $in -o $out",
            "  depfile = $out.d",
            "  deps = gcc",
            "  description = c++ torch binding",
            "rule link",
            "  command = $cxx -shared $in -o $out.tmp $ldflags && mv -f $out.tmp $out",
            "  description = link $out",
            f"build obj/torch_binding.o: cxx {_q(BINDING_SOURCE)}",
            f"build {EXTENSION_NAME}: link obj/torch_binding.o " + " ".join(f"obj/{n}.o" for n in link_objects),
        ]
    path = build_dir / "build.ninja"
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _run_ninja(build_dir: Path, target: str, jobs: int, total_hint: int, progress: bool) -> tuple[int, str]:
    """Run ninja, drive a progress bar from its status lines, return (exit code, output)."""
    cmd = [find_ninja(), "-C", str(build_dir), "-k", "0", "-j", str(jobs), target]
    env = dict(os.environ, NINJA_STATUS="[%f/%t] ")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_hint, desc=f"building ({jobs} jobs)", unit="variant", file=sys.stderr, leave=True)
    output = []
    status = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")
    for line in proc.stdout:
        output.append(line)
        m = status.match(line)
        if m and bar is not None:
            done, total = int(m.group(1)), int(m.group(2))
            bar.total = total
            bar.n = done
            bar.set_postfix_str(m.group(3)[-48:], refresh=True)
    rc = proc.wait()
    if bar is not None:
        bar.close()
    return rc, "".join(output)


def _object_mtimes(build_dir: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in (build_dir / "obj").glob("fc_*.o")}


def _compile_times(build_dir: Path, names: set[str]) -> dict[str, float]:
    """Seconds per object listed in ``names``, from ninja's own log (its last entry)."""
    log = build_dir / ".ninja_log"
    times = {}
    if not log.exists():
        return times
    for line in log.read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 4 and parts[3].startswith("obj/") and parts[3].endswith(".o"):
            name = parts[3][4:-2]
            if name in names:
                times[name] = (int(parts[1]) - int(parts[0])) / 1000.0
    return times


def build(
    configs: Iterable[KernelConfig],
    build_dir: Path | None = None,
    jobs: int | None = None,
    link: bool = True,
    progress: bool = True,
    prune: bool = False,
) -> BuildResult:
    """Generate, compile and link. Variants already in the build dir stay in the extension
    (re-rendered from the current templates) unless ``prune`` drops them."""
    t0 = time.time()
    build_dir = Path(build_dir or default_build_dir())
    (build_dir / "obj").mkdir(parents=True, exist_ok=True)
    src_dir = build_dir / "src"
    wanted = {c.name: c for c in configs}
    if not prune and src_dir.exists():
        for path in src_dir.glob("fc_*.cu"):
            try:
                wanted.setdefault(path.stem, config_from_name(path.stem))
            except ValueError:
                path.unlink()  # not a variant of any known family any more
    gen = generate(wanted.values(), src_dir, prune=True)
    hashes = {s.config.name: s.source_hash for s in gen.sources}
    names = sorted(hashes)
    for stale in (build_dir / "obj").glob("fc_*.o"):
        if stale.stem not in hashes:
            stale.unlink()

    jobs = jobs or default_jobs()
    write_ninja(build_dir, names, link_objects=None)
    before = _object_mtimes(build_dir)
    rc, output = _run_ninja(build_dir, "objects", jobs, len(names), progress)
    result = BuildResult(build_dir)
    for name in names:
        obj = build_dir / "obj" / f"{name}.o"
        log_path = build_dir / "obj" / f"{name}.o.log"
        log = log_path.read_text() if log_path.exists() else ""
        if obj.exists():
            result.built[name] = hashes[name]
            result.resources[name] = parse_ptxas(log)
        else:
            result.failed[name] = log or output
    after = _object_mtimes(build_dir)
    recompiled = {n for n, m in after.items() if before.get(n) != m}
    result.compile_seconds = _compile_times(build_dir, recompiled)
    if rc != 0 and not result.failed:
        raise BuildError(f"ninja failed:\n{output}")

    if link and result.built:
        write_ninja(build_dir, names, link_objects=sorted(result.built))
        rc, output = _run_ninja(build_dir, EXTENSION_NAME, jobs, 2, progress=False)
        if rc != 0:
            raise BuildError(f"linking the extension failed:\n{output}")
        result.extension = build_dir / EXTENSION_NAME
    result.wall_seconds = time.time() - t0
    _write_manifest(result)
    return result


def _write_manifest(result: BuildResult) -> None:
    manifest = {
        "extension": str(result.extension) if result.extension else None,
        "variants": {
            name: {
                "source_hash": h,
                "registers": result.resources[name].registers,
                "spill_stores": result.resources[name].spill_stores,
                "spill_loads": result.resources[name].spill_loads,
            }
            for name, h in sorted(result.built.items())
        },
        "failed": sorted(result.failed),
    }
    (result.build_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_manifest(build_dir: Path | None = None) -> dict:
    path = Path(build_dir or default_build_dir()) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"variants": {}, "failed": []}
