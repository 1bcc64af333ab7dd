"""Build generated variants into one torch extension with ninja.

Layout of a build directory::

    src/<variant>.cu          generated sources (flashcore_codegen.render, rewritten only when changed)
    obj/<variant>.o (.log)    one nvcc object per variant; the log keeps ptxas' resource report
    obj/torch_binding.o       the one torch-aware translation unit (torch's C++ standard and ABI,
                              the CUDA toolkit of the nvcc that compiles the kernels)
    obj/flashcore_ext.so      ninja's link output
    flashcore_ext.so          the published extension: a per-build name, then os.replace()
    manifest.json             written after compiling and again after linking:
                                variants   name -> source_hash, arch, min_cc, registers, spill_stores,
                                           spill_loads
                                failed     variants that did not compile
                                toolchain  nvcc, nvcc_version, cuda_home, cutlass_include,
                                           cutlass_version, cutlass_digest, toolchain_id,
                                           torch, torch_cuda, cxx_std (null without linking)
                                extension  path of the .so linked by this build, else null
                                linked     what the published .so was linked from: torch,
                                           torch_cuda, cxx_std, nvcc_version, toolchain_id,
                                           variants (name -> hash); null when there is none
                                link_error the linker's output when this build's link failed
    .lock                     flock'ed for a whole build (pid and start time of the holder)

Before anything, build() runs preflight() (what `flashcore doctor` prints) and stops on any
problem.

Kernel objects never include torch headers, so they compile anywhere nvcc and the CUTLASS
headers exist (CI checks them without a GPU). A variant that fails to compile is reported
with its nvcc error and left out; the rest still link.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
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

from flashcore_codegen.config import FAMILIES, KernelConfig, config_from_name
from flashcore_codegen.render import INCLUDE_DIR, generate
from flashcore_codegen import toolchain
from flashcore_codegen.toolchain import MIN_NVCC, ToolchainError

from .paths import cache_dir

EXTENSION_NAME = "flashcore_ext.so"
LINK_TARGET = f"obj/{EXTENSION_NAME}"
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
# Disk a build needs. Measured with nvcc 13.0 (sm_90a cubin only): an object is 38 KB
# (fc_scalar_*) to 58 KB (fc_pipelined_*), its ptxas log < 1 KB, its source 10-30 KB; the .so of
# one variant is 215 KB, mostly the binding. So ~0.2 MB a variant: 2 MB each is a 10x margin.
# nvcc's temporaries (preprocessed CuTe sources, PTX: tens of MB per running job, in $TMPDIR,
# usually the same disk) are covered by the floor.
MB_PER_VARIANT = 2
MIN_FREE_GB = 1.0
BINDING_SOURCE = Path(__file__).resolve().parent / "csrc" / "torch_binding.cpp"
GB_PER_NVCC_JOB = 4.5  # peak RSS of one CuTe translation unit in cicc, measured ~3-4 GB



class BuildError(RuntimeError):
    pass


def default_build_dir() -> Path:
    env = os.environ.get("FLASHCORE_BUILD_DIR")
    return Path(env).expanduser() if env else cache_dir() / "build"


def cutlass_include_dir() -> Path:
    """CuTe/CUTLASS headers from the nvidia-cutlass wheel (found without importing it)."""
    try:
        return toolchain.cutlass_include_dir()
    except ToolchainError as exc:
        raise BuildError(str(exc)) from None


def find_nvcc() -> Path:
    try:
        return toolchain.find_nvcc()
    except ToolchainError as exc:
        raise BuildError(str(exc)) from None


def cuda_home() -> Path:
    """The CUDA toolkit of the nvcc that compiles the kernels: the binding must compile and link
    against the same one. Derived from nvcc itself (wrapper scripts and symlinks resolved), never
    from torch's guess (torch may guess /usr/local, which has no include/cuda_runtime.h)."""
    try:
        info = toolchain.nvcc_info(find_nvcc())
    except ToolchainError as exc:
        raise BuildError(str(exc)) from None
    home = info.cuda_home
    if home is None or not (home / "include" / "cuda_runtime.h").exists():
        raise BuildError(
            f"the CUDA toolkit of {info.path} has no include/cuda_runtime.h (looked in {home}):"
            " reinstall the CUDA toolkit, or point NVCC at the nvcc of a complete toolkit"
        )
    return home


_STD_BY_CPLUSPLUS = {201703: "c++17", 202002: "c++20", 202302: "c++23"}


@functools.lru_cache(maxsize=1)
def binding_cxx_std() -> str:
    """The C++ standard torch requires of code that includes its headers.

    torch offers no public query for it: cpp_extension hard-codes the flag in its own builds
    (``common_cflags += ['-std=c++NN', ...]``), and its headers stop with
    ``#error C++20 or later compatible compiler is required`` when the standard is too old.
    Both are read from the installed torch and the newer one wins; c++17 when neither says.
    """
    import importlib.util

    import torch

    needed = 201703
    include = Path(torch.__file__).resolve().parent / "include"
    for header in ("ATen/ATen.h", "torch/csrc/api/include/torch/all.h", "torch/library.h", "c10/macros/Macros.h"):
        try:
            text = (include / header).read_text(errors="replace")
        except OSError:
            continue
        for m in re.finditer(r"__cplusplus\s*<\s*(\d{6})L", text):
            needed = max(needed, int(m.group(1)))
    try:
        # Read, not imported: importing cpp_extension on a GPU-less machine logs a misleading
        # "No CUDA runtime is found, using CUDA_HOME='/usr/local'" (we never use its guess).
        spec = importlib.util.find_spec("torch.utils.cpp_extension")
        src = Path(spec.origin).read_text(errors="replace") if spec and spec.origin else ""
        # Only the flag of its own library builds: docstrings show other standards in examples.
        for m in re.finditer(r"common_cflags\s*\+=\s*\[\s*['\"]-std=c\+\+(\d\d)['\"]", src):
            year = int(m.group(1))
            needed = max(needed, {17: 201703, 20: 202002, 23: 202302}.get(year, 201703))
    except OSError:
        pass
    return _STD_BY_CPLUSPLUS.get(needed, "c++20")


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
    """Compile and link flags for the binding (the only torch-aware unit): torch's include dirs,
    C++ standard and libstdc++ ABI, and the CUDA toolkit of the nvcc that compiles the kernels."""
    import logging

    import torch

    # Importing cpp_extension logs its own CUDA_HOME guess, which we do not use (cuda_home() below).
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import cpp_extension

    home = cuda_home()
    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    includes.append(f"-I{home / 'include'}")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cflags = [f"-std={binding_cxx_std()}"] + includes + [f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    torch_lib = Path(torch.__file__).parent / "lib"
    cuda_lib = next((d for d in (home / "lib64", home / "lib") if d.is_dir()), home / "lib64")
    ldflags = [
        f"-L{torch_lib}",
        f"-Wl,-rpath,{torch_lib}",
        "-lc10",
        "-lc10_cuda",
        "-ltorch",
        "-ltorch_cpu",
        "-ltorch_cuda",
        f"-L{cuda_lib}",
        "-lcudart",
    ]
    return cflags, ldflags


def _q(path: Path | str) -> str:
    """Escape a path for a ninja file."""
    return str(path).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def compile_order(variants: list[str]) -> list[str]:
    """The variants longest compile first (each family's measured per-variant cost, then the name):
    ninja starts ready jobs in the order the manifest lists them when it has no timings of its own
    (a fresh build directory), and by name the cheap SM80 variants ran first and the sm90 ones last,
    leaving a tail of a few long jobs on 16 cores (a schedule of the 73 defaults with the one-core
    costs: 255 s by name, 232 s longest first, 216 s if perfectly packed)."""
    return sorted(variants, key=lambda name: (-config_from_name(name).build_seconds(), name))


BINDING_OBJECT = "obj/torch_binding.o"


def write_ninja(build_dir: Path, variants: list[str], link_objects: list[str] | None, binding: bool = False) -> Path:
    """The build file: one nvcc edge per variant (longest first); with ``binding`` or
    ``link_objects`` also the torch binding's edge, listed first, and with ``link_objects`` the
    link of the extension from them."""
    nvcc = find_nvcc()
    variants = compile_order(variants)
    families = {name: config_from_name(name).family for name in variants}
    includes = f"-I{INCLUDE_DIR} -I{cutlass_include_dir()}"
    lines = [
        "ninja_required_version = 1.10",
        f"nvcc = {nvcc}",
        # Each family compiles with its own flags (its target, e.g. sm_90a, and defines), one
        # variable per family built: flags_<family>.
        *(f"flags_{f} = {' '.join(FAMILIES[f].NVCC_FLAGS)} {includes}" for f in sorted(set(families.values()))),
        # No header depfile on purpose: each generated .cu embeds a hash of its family's headers
        # and flags, nvcc's version and the CUTLASS headers' digest, so any change that matters
        # rewrites the .cu itself. Header mtimes alone (a fresh checkout, a reinstalled wheel)
        # then never rebuild.
        "rule nvcc",
        "  command = rm -f $out && $nvcc $flags -c $in -o $out > $out.log 2>&1 || (cat $out.log; exit 1)",
        "  description = nvcc $name",
        "",
    ]
    if binding or link_objects is not None:
        # The binding (~15 s of one core) compiles beside the kernels, first, as ninja starts
        # ready edges in the order listed: compiled after them, it and the link were a serial
        # tail of the build (benchmarks/NOTES.md, 2026-11-28 05:21-).
        cflags, ldflags = _torch_flags()
        cxx = os.environ.get("CXX", "c++")
        lines += [
            f"cxx = {cxx}",
            f"binding_flags = -O2 -fPIC -I{INCLUDE_DIR} {' '.join(cflags)}",
            f"ldflags = {' '.join(ldflags)}",
            "rule cxx",
            "  command = $cxx $binding_flags -MD -MF $out.d -c $in -o $out",
            "  depfile = $out.d",
            "  deps = gcc",
            "  description = c++ torch binding",
            "rule link",
            "  command = $cxx -shared $in -o $out.tmp $ldflags && mv -f $out.tmp $out",
            "  description = link $out",
            f"build {BINDING_OBJECT}: cxx {_q(BINDING_SOURCE)}",
            "",
        ]
    for name in variants:
        lines.append(f"build obj/{name}.o: nvcc src/{name}.cu")
        lines.append(f"  name = {name}")
        lines.append(f"  flags = $flags_{families[name]}")
    lines.append("build objects: phony " + " ".join(f"obj/{n}.o" for n in variants))
    if link_objects is not None:
        # Linked inside obj/; build() publishes it under a per-build name and os.replace()s
        # it to EXTENSION_NAME, so a reader never maps a half-written file.
        lines.append(f"build {LINK_TARGET}: link {BINDING_OBJECT} " + " ".join(f"obj/{n}.o" for n in link_objects))
    path = build_dir / "build.ninja"
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _run_ninja(build_dir: Path, targets: str | list[str], jobs: int, total_hint: int,
               progress: bool) -> tuple[int, str]:
    """Run ninja, drive a progress bar from its status lines, return (exit code, output)."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    cmd = [find_ninja(), "-C", str(build_dir), "-k", "0", "-j", str(jobs), *targets]
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


@dataclass
class Preflight:
    """What `flashcore doctor` prints (``facts``) and what stops a build before it starts
    (``problems``: each "what is wrong — how to fix it").

    ``facts`` keys, in this order, each present when it could be found out: "nvcc",
    "nvcc version", "CUDA home", "torch" (or "not needed (--no-link)"), "torch CUDA",
    "binding C++ std", "CUTLASS include", "CUTLASS version", "build dir", "free disk GB", "jobs".
    """

    problems: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def preflight(link: bool = True, jobs: int | None = None, *, build_dir: Path | None = None,
              variants: int | None = None) -> Preflight:
    """Check, without compiling anything, that a build can succeed (nvcc, torch when linking,
    the CUDA toolkit, CUTLASS, disk, -j). Fast: nvcc is queried once per process."""
    pf = Preflight()
    problems, facts = pf.problems, pf.facts
    no_link = " (or compile the kernels only, without a GPU-enabled torch: flashcore build --no-link)"

    info = None
    try:
        info = toolchain.nvcc_info(toolchain.find_nvcc())
    except ToolchainError as exc:
        problems.append(f"{exc} — install the CUDA toolkit >= {MIN_NVCC[0]}.{MIN_NVCC[1]} or set NVCC=/path/to/nvcc")
    if info is not None:
        facts["nvcc"] = str(info.path)
        facts["nvcc version"] = info.version
        if info.release < MIN_NVCC:
            problems.append(
                f"nvcc {info.version} at {info.path} is too old (flashcore needs >= {MIN_NVCC[0]}.{MIN_NVCC[1]})"
                " — install a newer CUDA toolkit or set NVCC=/path/to/newer/nvcc"
            )
        if not info.supports_sm90a:
            problems.append(
                f"nvcc {info.version} at {info.path} cannot compile for sm_90a (its --list-gpu-code:"
                f" {' '.join(info.gpu_codes) or 'nothing'}) — install a CUDA toolkit >= 12.3 with Hopper support"
            )
        home = info.cuda_home
        facts["CUDA home"] = str(home)
        if home is None or not (home / "include" / "cuda_runtime.h").exists():
            problems.append(
                f"the CUDA toolkit of {info.path} ({home}) has no include/cuda_runtime.h"
                " — reinstall the CUDA toolkit, or set NVCC to the nvcc of a complete toolkit"
            )

    if link:
        try:
            import torch
        except ImportError:
            torch = None
            problems.append("torch is not installed — pip install torch (a CUDA build)" + no_link)
        if torch is not None:
            facts["torch"] = torch.__version__
            facts["torch CUDA"] = str(torch.version.cuda)
            if torch.version.cuda is None:
                problems.append(
                    f"torch {torch.__version__} is a CPU-only build, the extension cannot link against it"
                    " — install a CUDA build of torch (https://pytorch.org/get-started/locally/)" + no_link
                )
            elif info is not None:
                torch_major = int(str(torch.version.cuda).split(".")[0])
                if torch_major != info.release[0]:
                    problems.append(
                        f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but nvcc"
                        f" ({info.path}) is CUDA {info.version}: the binding would mix two CUDA runtimes"
                        f" — install torch for CUDA {info.release[0]}.x or a CUDA {torch_major}.x toolkit"
                        " (set NVCC)" + no_link
                    )
            try:
                facts["binding C++ std"] = binding_cxx_std()
            except Exception as exc:  # an odd torch install: report, do not crash the doctor
                problems.append(f"cannot tell which C++ standard torch needs ({exc!r}) — reinstall torch" + no_link)
    else:
        facts["torch"] = "not needed (--no-link)"

    try:
        include = toolchain.cutlass_include_dir()
        facts["CUTLASS include"] = str(include)
        facts["CUTLASS version"] = toolchain.cutlass_header_version(include)
    except ToolchainError as exc:
        problems.append(f"{exc} — the kernels include cute/tensor.hpp")

    try:
        find_ninja()
    except BuildError as exc:
        problems.append(f"{exc} — ninja drives the compilation")

    build_dir = Path(build_dir or default_build_dir())
    facts["build dir"] = str(build_dir)
    probe = build_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free_gb = shutil.disk_usage(probe).free / 1024**3
        facts["free disk GB"] = f"{free_gb:.1f}"
        need_gb = max(MIN_FREE_GB, (variants or 0) * MB_PER_VARIANT / 1024)
        if free_gb < need_gb:
            problems.append(
                f"only {free_gb:.1f} GB free under {probe}, the build needs ~{need_gb:.1f} GB"
                " — free some disk or set FLASHCORE_BUILD_DIR to a larger disk"
            )
    except OSError as exc:
        problems.append(f"cannot check free disk under {probe}: {exc} — set FLASHCORE_BUILD_DIR to a writable dir")
    if probe.exists() and not os.access(probe, os.W_OK):
        problems.append(f"{probe} is not writable — set FLASHCORE_BUILD_DIR to a writable directory")

    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        problems.append(f"jobs must be a whole number >= 1, got {jobs!r} — pass -j N with N >= 1, or leave -j out"
                        f" (default here: {default_jobs()})")
        facts["jobs"] = str(jobs)
    else:
        facts["jobs"] = str(jobs or default_jobs()) + ("" if jobs else " (from cores and memory)")
    return pf


class BuildLock:
    """An exclusive flock on <build dir>/.lock for a whole build: a second build (another
    terminal, another node sharing the cache dir) waits for the first, printing once who holds
    it. ``timeout`` None waits forever (a build is never interrupted half-way); a number of
    seconds raises BuildError when the lock is still held then. The lock file keeps the holder's
    pid and start time; it is never deleted (deleting a flocked file breaks the lock)."""

    def __init__(self, build_dir: Path, timeout: float | None = None, stream=None):
        self.path = Path(build_dir) / LOCK_NAME
        self.timeout = timeout
        self.stream = stream if stream is not None else sys.stderr
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            text = self.path.read_text().strip()
            pid, started = text.split(" ", 1)
            return f"pid {pid} (started {started})"
        except (OSError, ValueError):
            return "another process"

    def __enter__(self) -> "BuildLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for the build in {self.path.parent} held by {self.holder()}",
                      file=self.stream, flush=True)
                if self.timeout is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    deadline = time.monotonic() + self.timeout
                    while True:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            break
                        except BlockingIOError:
                            if time.monotonic() >= deadline:
                                raise BuildError(
                                    f"the build dir {self.path.parent} is still locked by {self.holder()}"
                                    f" after {self.timeout:g} s — wait for that build, or use another"
                                    " build dir (FLASHCORE_BUILD_DIR)"
                                ) from None
                            time.sleep(0.2)
        except BaseException:
            os.close(fd)
            raise
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {started}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def build(
    configs: Iterable[KernelConfig],
    build_dir: Path | None = None,
    jobs: int | None = None,
    link: bool = True,
    progress: bool = True,
    prune: bool = False,
    lock_timeout: float | None = None,
    check: bool = True,
) -> BuildResult:
    """Generate, compile and link. Variants already in the build dir stay in the extension
    (re-rendered from the current templates) unless ``prune`` drops them.

    Runs :func:`preflight` first (``check=False`` skips it) and raises BuildError with all its
    problems. Holds the build dir's lock throughout (see :class:`BuildLock`; ``lock_timeout``
    None waits forever). The manifest is written after compiling (``"extension": null``) and
    again after linking; a failed link leaves ``"link_error"`` in it, then raises BuildError."""
    t0 = time.time()
    configs = list(configs)
    build_dir = Path(build_dir or default_build_dir())
    if check:
        pf = preflight(link, jobs, build_dir=build_dir, variants=len(configs))
        if pf.problems:
            raise BuildError("cannot build:\n" + "\n".join(f"  - {p}" for p in pf.problems))
    elif jobs is not None and jobs < 1:
        raise BuildError(f"jobs must be >= 1, got {jobs}")
    with BuildLock(build_dir, timeout=lock_timeout):
        result = _build_locked(configs, build_dir, jobs, link, progress, prune)
    result.wall_seconds = time.time() - t0
    return result


def _build_locked(configs, build_dir: Path, jobs, link: bool, progress: bool, prune: bool) -> BuildResult:
    t0 = time.time()
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
    # A build that links compiles the binding with the kernels; where its flags cannot be had
    # (torch missing or broken), the kernels compile alone and the link step reports why.
    binding = link
    if binding:
        try:
            write_ninja(build_dir, names, link_objects=None, binding=True)
        except (BuildError, ImportError, OSError):
            binding = False
    if not binding:
        write_ninja(build_dir, names, link_objects=None)
    before = _object_mtimes(build_dir)
    targets = ["objects", BINDING_OBJECT] if binding else "objects"
    rc, output = _run_ninja(build_dir, targets, jobs, len(names) + binding, progress)
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
    # A failed binding alone is the link step's to report (it retries the binding's edge).
    if rc != 0 and not result.failed and not (binding and not (build_dir / BINDING_OBJECT).exists()):
        raise BuildError(f"ninja failed:\n{output}")

    linking = link and bool(result.built)
    info = toolchain_facts(with_torch=linking)
    previous = read_manifest(build_dir).get("linked")
    # The compile results survive whatever happens at link time (flashcore variants reads them).
    result.wall_seconds = time.time() - t0
    _write_manifest(result, info, linked=_still_valid(previous, build_dir))
    if linking:
        try:
            write_ninja(build_dir, names, link_objects=sorted(result.built))
            rc, output = _run_ninja(build_dir, LINK_TARGET, jobs, 2, progress=False)
        except BuildError as exc:
            rc, output = 1, str(exc)
        if rc != 0:
            _write_manifest(result, info, linked=_still_valid(previous, build_dir), link_error=output)
            raise BuildError(f"linking the extension failed:\n{output}")
        result.extension = _publish(build_dir)
        linked = {key: info[key] for key in ("torch", "torch_cuda", "cxx_std", "nvcc_version", "toolchain_id")}
        linked["variants"] = dict(sorted(result.built.items()))
        result.wall_seconds = time.time() - t0
        _write_manifest(result, info, linked=linked)
    return result


def _publish(build_dir: Path) -> Path:
    """Put obj/flashcore_ext.so in place as flashcore_ext.so atomically, under a name unique to
    this build first (a hard link, a copy where the filesystem has none). A process that has
    the old .so loaded keeps its (unlinked) inode."""
    final = build_dir / EXTENSION_NAME
    linked = build_dir / LINK_TARGET
    if final.exists() and os.path.samefile(final, linked):
        return final  # nothing relinked (and rename() of two links to one file does nothing)
    # The link rule writes $out.tmp and renames it over obj/flashcore_ext.so, never in place,
    # so a hard link to it never changes under a reader.
    tmp = build_dir / f"{EXTENSION_NAME}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(linked, tmp)
    except OSError:
        shutil.copy2(linked, tmp)
    os.replace(tmp, final)
    return final


def _still_valid(linked: dict | None, build_dir: Path) -> dict | None:
    """The previous manifest's record of the published .so, kept while that .so exists (a
    --no-link build, or a failed link, leaves the published extension as it was)."""
    return linked if linked and (build_dir / EXTENSION_NAME).exists() else None


def toolchain_facts(with_torch: bool) -> dict:
    """What the manifest records about how this build compiles (and links)."""
    nvcc = toolchain.nvcc_info(find_nvcc())
    include = cutlass_include_dir()
    info = {
        "nvcc": str(nvcc.path),
        "nvcc_version": nvcc.version,
        "cuda_home": str(nvcc.cuda_home),
        "cutlass_include": str(include),
        "cutlass_version": toolchain.cutlass_header_version(include),
        "cutlass_digest": toolchain.cutlass_digest(include),
        "toolchain_id": toolchain.identity(),
        "torch": None,
        "torch_cuda": None,
        "cxx_std": None,
    }
    if with_torch:
        import torch

        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cxx_std=binding_cxx_std())
    return info


def _write_manifest(result: BuildResult, info: dict | None = None, linked: dict | None = None,
                    link_error: str | None = None) -> None:
    """manifest.json: the compile results (variants, failed), how they were built (toolchain),
    the published extension and what it was linked from (linked; null when there is none), and
    the last link error. Written atomically."""
    manifest = {
        "extension": str(result.extension) if result.extension else None,
        "variants": {
            name: {
                "source_hash": h,
                **_target(name),
                "registers": result.resources[name].registers,
                "spill_stores": result.resources[name].spill_stores,
                "spill_loads": result.resources[name].spill_loads,
            }
            for name, h in sorted(result.built.items())
        },
        "failed": sorted(result.failed),
        "toolchain": info,
        "linked": linked,
        "link_error": link_error,
    }
    path = result.build_dir / MANIFEST_NAME
    tmp = path.with_name(f"{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _target(name: str) -> dict:
    """What a variant was compiled for (its family's ARCH) and the capability its code needs."""
    config = config_from_name(name)
    return {"arch": config.ARCH, "min_cc": config.MIN_CC}


def read_manifest(build_dir: Path | None = None) -> dict:
    path = Path(build_dir or default_build_dir()) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else {"variants": {}, "failed": []}
