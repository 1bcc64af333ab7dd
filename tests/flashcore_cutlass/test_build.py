"""Compiling generated variants with nvcc (no GPU needed): one representative per family,
built once per module (~3 minutes on 2 cores), plus the failure path and incremental
rebuilds. The pure-Python helpers are tested without nvcc."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import flashcore_codegen.render
from flashcore_codegen.config import config_from_name
from flashcore_codegen import toolchain
from flashcore_cutlass import build as build_module
from flashcore_cutlass.build import BuildError, BuildLock, Preflight, Resources, build, parse_ptxas, preflight

SCALAR = "fc_scalar_fp16_d64_full_m16_w4"
MMA = "fc_mma_bf16_d128_full_m64_n64_w4"  # fp16 d64 m64 spills 4 B: see benchmarks/NOTES.md
PIPELINED = "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean0"
PIPELINED_LEAN = "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean1"  # the register-lean mainloop axis
SM90 = "fc_sm90_bf16_d128_causal_m128_n128_s2_sch1_p0_kv1"  # TMA + wgmma + warp specialisation
NAMES = [SCALAR, MMA, PIPELINED, PIPELINED_LEAN, SM90]
# Built in the same ninja run with "#error boom" prepended: must fail alone.
BROKEN = "fc_scalar_fp16_d64_causal_m16_w4"

PTXAS_LOG = """\
ptxas info    : 11 bytes gmem
ptxas info    : Compiling entry function '_ZN4fc_a6kernelEN9flashcore9FwdParamsE' for 'sm_90a'
ptxas info    : Function properties for _ZN4fc_a6kernelEN9flashcore9FwdParamsE
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 96 registers, used 1 barriers, 8 bytes cumulative stack size
ptxas info    : Compiling entry function '_ZN4fc_b6kernelEN9flashcore9FwdParamsE' for 'sm_90a'
ptxas info    : Function properties for _ZN4fc_b6kernelEN9flashcore9FwdParamsE
    16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers
ptxas info    : Compile time = 337.152 ms
"""


# -- without nvcc ----------------------------------------------------------------------------

def test_parse_ptxas_takes_the_largest_kernel_entry():
    res = parse_ptxas(PTXAS_LOG)
    assert res == Resources(registers=168, spill_stores=4, spill_loads=12, stack_bytes=16)
    assert res.spills


def test_parse_ptxas_clean_and_empty_logs():
    clean = parse_ptxas(
        "ptxas info    : Function properties for k\n"
        "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 44 registers, used 1 barriers\n"
    )
    assert clean == Resources(registers=44, spill_stores=0, spill_loads=0, stack_bytes=0)
    assert not clean.spills
    empty = parse_ptxas("")
    assert empty == Resources() and empty.registers is None and not empty.spills


def test_ninja_path_escaping():
    assert build_module._q("/a b/c:d$e") == "/a$ b/c$:d$$e"


def test_ninja_compiles_each_family_with_its_flags(tmp_path, monkeypatch):
    if _toolchain_missing():
        pytest.skip("write_ninja names nvcc and the CUTLASS headers")
    import flashcore_codegen.config as config_module

    monkeypatch.setattr(config_module.FAMILIES["sm90"], "NVCC_FLAGS",
                        config_module.FAMILIES["sm90"].NVCC_FLAGS + ("-DFLASHCORE_SM90_ONLY=1",))
    build_module.write_ninja(tmp_path, [SCALAR, SM90], link_objects=None)
    ninja = (tmp_path / "build.ninja").read_text()
    flags = dict(line.split(" = ", 1) for line in ninja.splitlines() if line.startswith("flags_"))
    assert sorted(flags) == ["flags_scalar", "flags_sm90"]  # only the families being built
    assert "-DFLASHCORE_SM90_ONLY=1" in flags["flags_sm90"] and "-DFLASHCORE_SM90_ONLY" not in flags["flags_scalar"]
    assert all("-gencode=arch=compute_90a,code=sm_90a" in f for f in flags.values())
    assert f"build obj/{SM90}.o: nvcc src/{SM90}.cu\n  name = {SM90}\n  flags = $flags_sm90\n" in ninja
    assert "$nvcc $flags -c $in" in ninja


def test_compile_order_is_longest_first(tmp_path):
    # sm90 with extended wgmma shapes (53 s a variant) before pipelined (37.9; lean 36.5) before
    # sm90 (28.7) before mma before scalar; by name within.
    sm90_ext = "fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1"
    names = [SCALAR, PIPELINED_LEAN, SM90, PIPELINED, "fc_mma_bf16_d64_full_m64_n64_w4", sm90_ext]
    assert build_module.compile_order(names) == [sm90_ext, PIPELINED, PIPELINED_LEAN, SM90,
                                                  "fc_mma_bf16_d64_full_m64_n64_w4", SCALAR]
    if _toolchain_missing():
        return
    build_module.write_ninja(tmp_path, names, link_objects=None)
    edges = [line.split(":")[0][len("build obj/"):-2] for line in (tmp_path / "build.ninja").read_text().splitlines()
             if line.startswith("build obj/fc_")]
    assert edges == build_module.compile_order(names)


def test_default_jobs_is_positive():
    assert 1 <= build_module.default_jobs() <= (os.cpu_count() or 1)


def test_read_manifest_of_empty_dir(tmp_path):
    assert build_module.read_manifest(tmp_path) == {"variants": {}, "failed": []}


# -- toolchain discovery and preflight, with a fake toolkit -------------------------------------

def _fake_toolkit(root: Path, release: str = "13.0", codes: str = "sm_80 sm_90 sm_100", runtime_h: bool = True) -> Path:
    """<root>/cuda-x/bin/nvcc answering --version, --list-gpu-code and -v --dryrun like the real
    one, and <root>/bin/nvcc, a wrapper script that execs it (as /usr/local/bin/nvcc does here).
    Returns the wrapper."""
    home = root / "cuda-x"
    (home / "bin").mkdir(parents=True)
    (home / "include").mkdir()
    if runtime_h:
        (home / "include" / "cuda_runtime.h").write_text("// fake\n")
    real = home / "bin" / "nvcc"
    real.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$1" in
          --version) echo "Cuda compilation tools, release {release}, V{release}.1"; echo "Build fake_{release}";;
          --list-gpu-code) echo "{codes}" | tr ' ' '\\n';;
          -v) echo "#$ _HERE_={home}/bin" >&2; echo "#$ TOP={home}/bin/.." >&2;;
        esac
        """))
    real.chmod(0o755)
    wrapper = root / "bin" / "nvcc"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def fake_nvcc(tmp_path, monkeypatch):
    def make(**kwargs) -> Path:
        wrapper = _fake_toolkit(tmp_path / f"tk{len(list(tmp_path.glob('tk*')))}", **kwargs)
        monkeypatch.setenv("NVCC", str(wrapper))
        toolchain.clear_caches()
        return wrapper

    yield make
    toolchain.clear_caches()


def test_cuda_home_resolves_a_wrapper_script(fake_nvcc):
    wrapper = fake_nvcc()
    info = toolchain.nvcc_info()
    assert info.path == wrapper
    assert info.version == "13.0.1" and info.release == (13, 0)
    assert info.cuda_home == (wrapper.parent.parent / "cuda-x").resolve()  # not wrapper/..
    assert build_module.cuda_home() == info.cuda_home
    assert info.supports_sm90a


def test_cuda_home_without_cuda_runtime_h_is_an_error(fake_nvcc):
    fake_nvcc(runtime_h=False)
    with pytest.raises(BuildError, match="cuda_runtime.h"):
        build_module.cuda_home()
    assert any("cuda_runtime.h" in p for p in preflight(link=False, jobs=1).problems)


def test_preflight_facts_and_no_problems(fake_nvcc, tmp_path):
    fake_nvcc()
    pf = preflight(link=False, jobs=3, build_dir=tmp_path / "b")
    assert isinstance(pf, Preflight)
    for key in ("nvcc", "nvcc version", "CUDA home", "torch", "build dir", "free disk GB", "jobs"):
        assert key in pf.facts, key
    assert pf.facts["nvcc version"] == "13.0.1"
    assert pf.facts["jobs"] == "3"
    if "CUTLASS include" in pf.facts:
        assert pf.problems == [] and pf.ok
        assert pf.facts["CUTLASS version"].count(".") == 2


def test_preflight_old_nvcc_and_no_sm90(fake_nvcc):
    fake_nvcc(release="12.1", codes="sm_75 sm_80 sm_86")
    problems = preflight(link=False, jobs=1).problems
    assert any("too old" in p and "12.1" in p for p in problems), problems
    assert any("sm_90a" in p for p in problems), problems


def test_preflight_without_nvcc(monkeypatch):
    def missing():
        raise toolchain.ToolchainError("nvcc not found: install the CUDA toolkit (>= 12.3) or set NVCC=/path/to/nvcc")

    monkeypatch.setattr(toolchain, "find_nvcc", missing)
    problems = preflight(link=False, jobs=1).problems
    assert any(p.startswith("nvcc not found") and " — " in p for p in problems), problems


def test_preflight_cpu_torch_names_no_link(fake_nvcc, monkeypatch):
    import torch

    fake_nvcc()
    monkeypatch.setattr(torch.version, "cuda", None)
    problems = preflight(link=True, jobs=1).problems
    assert any("CPU-only" in p and "--no-link" in p for p in problems), problems
    assert not any("CPU-only" in p for p in preflight(link=False, jobs=1).problems)


def test_preflight_torch_cuda_major_must_match_nvcc(fake_nvcc, monkeypatch):
    import torch

    fake_nvcc(release="13.0")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    problems = preflight(link=True, jobs=1).problems
    assert any("CUDA 12.8" in p and "13.0" in p for p in problems), problems


def test_preflight_reports_binding_std():
    import torch

    if torch.version.cuda is None:
        pytest.skip("CPU-only torch")
    std = preflight(link=True, jobs=1).facts.get("binding C++ std")
    assert std == build_module.binding_cxx_std()


@pytest.mark.parametrize("jobs", [0, -2])
def test_preflight_rejects_jobs_below_one(jobs, tmp_path):
    problems = preflight(link=False, jobs=jobs).problems
    assert any("jobs must be" in p and "-j" in p for p in problems), problems
    with pytest.raises(BuildError, match="jobs must be"):
        build([config_from_name(SCALAR)], build_dir=tmp_path, jobs=jobs, link=False, progress=False)
    assert not (tmp_path / "src").exists()  # stopped before generating anything


def test_preflight_low_disk(monkeypatch, tmp_path):
    monkeypatch.setattr(build_module.shutil, "disk_usage", lambda p: SimpleNamespace(free=200 * 1024**2))
    problems = preflight(link=False, jobs=1, build_dir=tmp_path, variants=60).problems
    assert any("free" in p and "FLASHCORE_BUILD_DIR" in p for p in problems), problems


def test_preflight_is_fast_once_warm():
    preflight(link=True, jobs=None)
    t0 = time.perf_counter()
    preflight(link=True, jobs=None)
    assert time.perf_counter() - t0 < 0.5


def test_binding_std_follows_torch_headers():
    import torch

    std = build_module.binding_cxx_std()
    assert std in {"c++17", "c++20", "c++23"}
    aten = Path(torch.__file__).parent / "include" / "ATen" / "ATen.h"
    if aten.exists() and "__cplusplus < 202002L" in aten.read_text():
        assert std in {"c++20", "c++23"}  # torch >= 2.10: C++17 stops with #error


def test_binding_flags_use_torch_std_and_nvcc_toolkit():
    import torch

    if torch.version.cuda is None or _toolchain_missing():
        pytest.skip("needs a CUDA torch and nvcc")
    cflags, ldflags = build_module._torch_flags()
    assert f"-std={build_module.binding_cxx_std()}" in cflags
    assert "-std=c++17" not in cflags or build_module.binding_cxx_std() == "c++17"
    home = build_module.cuda_home()
    assert f"-I{home / 'include'}" in cflags
    assert (home / "include" / "cuda_runtime.h").exists()


# -- the build-dir lock, with two processes ----------------------------------------------------

_HOLD_LOCK = """
import sys, time
from pathlib import Path
from flashcore_cutlass.build import BuildLock
with BuildLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lock(build_dir: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(build_dir), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_waits_for_the_other_process(tmp_path):
    holder = _hold_lock(tmp_path, 1.5)
    try:
        out = io.StringIO()
        t0 = time.monotonic()
        with BuildLock(tmp_path, stream=out):
            waited = time.monotonic() - t0
            assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
        assert waited > 1.0  # the holder sleeps 1.5 s with the lock
        message = out.getvalue()
        assert message.count("waiting for the build") == 1
        assert f"in {tmp_path} held by pid {holder.pid} (started " in message
    finally:
        holder.wait()


def test_lock_timeout(tmp_path):
    holder = _hold_lock(tmp_path, 5)
    try:
        with pytest.raises(BuildError, match=f"still locked by pid {holder.pid}"):
            with BuildLock(tmp_path, timeout=0.3, stream=io.StringIO()):
                pass
    finally:
        holder.kill()
        holder.wait()
    with BuildLock(tmp_path, timeout=5, stream=io.StringIO()):  # released by the holder's death
        pass


_TIMED_BUILD = """
import json, sys, time
from pathlib import Path
from flashcore_cutlass import build as b
from flashcore_codegen.config import config_from_name

def fake_locked(configs, build_dir, jobs, link, progress, prune):
    start = time.time()
    time.sleep(1.0)
    return b.BuildResult(build_dir)

b._build_locked = fake_locked
t0 = time.time()
b.build([config_from_name("%s")], build_dir=Path(sys.argv[1]), check=False, progress=False)
print(json.dumps([t0, time.time()]))
"""


def test_two_builds_in_one_dir_run_one_after_the_other(tmp_path):
    script = _TIMED_BUILD % SCALAR
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ends = sorted(json.loads(o[0])[1] for o in outs)
    starts = sorted(json.loads(o[0])[0] for o in outs)
    assert ends[1] - starts[0] >= 2.0  # 1 s each, never both at once
    waits = [o[1] for o in outs if "waiting for the build" in o[1]]
    assert len(waits) == 1 and waits[0].count("waiting for the build") == 1, outs


# -- manifest around a failed link, and publishing the .so (ninja faked) ------------------------

@pytest.fixture
def fake_ninja(monkeypatch):
    """build() with ninja, the ninja file and the toolchain facts faked: objects "compile" into
    empty files, the link fails while ``state.link_error`` is set."""
    state = SimpleNamespace(link_error="undefined reference to `flashcore::oops'", links=0, relink=True,
                            compile_targets=[])

    def run_ninja(build_dir, target, jobs, total_hint, progress):
        if target != build_module.LINK_TARGET:
            state.compile_targets.append(target)
            for src in (build_dir / "src").glob("fc_*.cu"):
                (build_dir / "obj" / f"{src.stem}.o").write_bytes(b"obj")
                (build_dir / "obj" / f"{src.stem}.o.log").write_text("ptxas info    : Used 40 registers\n")
            return 0, ""
        assert target == build_module.LINK_TARGET
        if not state.relink:  # up to date: ninja does nothing
            return 0, ""
        state.links += 1
        if state.link_error:
            return 1, f"FAILED: obj/flashcore_ext.so\n{state.link_error}\n"
        tmp = build_dir / f"{target}.tmp"  # as the real link rule: $out.tmp, then mv
        tmp.write_bytes(f"so {state.links}".encode())
        tmp.replace(build_dir / target)
        return 0, ""

    facts = {"nvcc": "/x/nvcc", "nvcc_version": "13.0.88", "cuda_home": "/x", "cutlass_include": "/c",
             "cutlass_version": "4.2.0", "cutlass_digest": "d", "toolchain_id": "tid", "torch": None,
             "torch_cuda": None, "cxx_std": None}

    def toolchain_facts(with_torch):
        return dict(facts, **({"torch": "2.14.1", "torch_cuda": "13.0", "cxx_std": "c++20"} if with_torch else {}))

    monkeypatch.setattr(build_module, "_run_ninja", run_ninja)
    monkeypatch.setattr(build_module, "write_ninja", lambda *a, **k: None)
    monkeypatch.setattr(build_module, "toolchain_facts", toolchain_facts)
    return state


def test_manifest_survives_a_failed_link(tmp_path, fake_ninja):
    with pytest.raises(BuildError, match="linking the extension failed"):
        build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1)
    manifest = build_module.read_manifest(tmp_path)
    assert manifest["extension"] is None
    assert "undefined reference" in manifest["link_error"]
    assert list(manifest["variants"]) == [SCALAR] and manifest["variants"][SCALAR]["registers"] == 40
    assert manifest["toolchain"]["nvcc_version"] == "13.0.88"
    assert manifest["linked"] is None
    assert not (tmp_path / build_module.EXTENSION_NAME).exists()

    fake_ninja.link_error = None
    result = build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1)
    assert result.extension == tmp_path / build_module.EXTENSION_NAME
    manifest = build_module.read_manifest(tmp_path)
    assert manifest["extension"] == str(result.extension) and manifest["link_error"] is None
    assert manifest["linked"] == {"torch": "2.14.1", "torch_cuda": "13.0", "cxx_std": "c++20",
                                  "nvcc_version": "13.0.88", "toolchain_id": "tid",
                                  "variants": {SCALAR: result.built[SCALAR]}}
    first_inode = result.extension.stat().st_ino

    # A failed link later keeps the published .so and the record of what it was linked from.
    fake_ninja.link_error = "boom"
    with pytest.raises(BuildError):
        build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1)
    manifest = build_module.read_manifest(tmp_path)
    assert manifest["link_error"].strip().endswith("boom") and manifest["extension"] is None
    assert manifest["linked"]["torch"] == "2.14.1"
    assert result.extension.read_bytes() == b"so 2"  # the 2nd link attempt

    # A successful relink publishes a new file (new inode): a process with the old one mapped is safe.
    fake_ninja.link_error = None
    build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1)
    assert result.extension.read_bytes() == b"so 4"
    assert result.extension.stat().st_ino != first_inode
    assert not list(tmp_path.glob("*.tmp"))
    # Nothing relinked: published as it is, no temporary left behind.
    fake_ninja.relink = False
    build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1, link=True)
    assert not list(tmp_path.glob("*.tmp"))
    assert result.extension.read_bytes() == b"so 4"


def test_a_linking_build_compiles_the_binding_with_the_kernels(tmp_path, fake_ninja):
    # The binding's edge goes in the kernels' ninja run, not after it (it was a serial tail).
    build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1, link=False)
    assert fake_ninja.compile_targets == ["objects"]
    fake_ninja.link_error = None
    build([config_from_name(SCALAR)], build_dir=tmp_path, check=False, progress=False, jobs=1, link=True)
    assert fake_ninja.compile_targets[1] == ["objects", build_module.BINDING_OBJECT]


def test_binding_is_the_first_edge_of_a_linking_build(tmp_path, monkeypatch):
    if _toolchain_missing():
        pytest.skip("write_ninja names nvcc and the CUTLASS headers")
    monkeypatch.setattr(build_module, "_torch_flags", lambda: (["-std=c++20"], ["-ltorch"]))
    build_module.write_ninja(tmp_path, [SCALAR, SM90], link_objects=None, binding=True)
    edges = [line.split(":")[0] for line in (tmp_path / "build.ninja").read_text().splitlines()
             if line.startswith("build ")]
    assert edges == [f"build {build_module.BINDING_OBJECT}", f"build obj/{SM90}.o", f"build obj/{SCALAR}.o",
                     "build objects"]
    build_module.write_ninja(tmp_path, [SCALAR, SM90], link_objects=[SCALAR])
    edges = [line.split(":")[0] for line in (tmp_path / "build.ninja").read_text().splitlines()
             if line.startswith("build ")]
    assert edges[0] == f"build {build_module.BINDING_OBJECT}" and edges[-1] == f"build {build_module.LINK_TARGET}"
    build_module.write_ninja(tmp_path, [SCALAR], link_objects=None)
    assert "torch_binding" not in (tmp_path / "build.ninja").read_text()


def test_no_link_build_writes_manifest_without_torch(tmp_path, fake_ninja):
    result = build([config_from_name(SCALAR)], build_dir=tmp_path, link=False, check=False, progress=False, jobs=1)
    assert result.extension is None and fake_ninja.links == 0
    manifest = build_module.read_manifest(tmp_path)
    assert manifest["extension"] is None and manifest["link_error"] is None and manifest["linked"] is None
    assert manifest["toolchain"]["torch"] is None


# -- with nvcc -------------------------------------------------------------------------------

def _toolchain_missing() -> str | None:
    try:
        build_module.find_nvcc()
        build_module.cutlass_include_dir()
        build_module.find_ninja()
    except BuildError as exc:
        return str(exc)
    return None


def _find_cuobjdump() -> str | None:
    candidates = [os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump")]
    try:
        candidates.append(str(build_module.find_nvcc().resolve().parent / "cuobjdump"))
        candidates.append(str(build_module.cuda_home() / "bin" / "cuobjdump"))  # nvcc may be a wrapper
    except BuildError:
        pass
    candidates.append("/usr/local/cuda/bin/cuobjdump")
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _mtimes(directory: Path, pattern: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.glob(pattern)}


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    missing = _toolchain_missing()
    if missing:
        pytest.skip(f"needs nvcc, ninja and the CUTLASS headers: {missing}")
    build_dir = tmp_path_factory.mktemp("fc_build")
    real_render = flashcore_codegen.render.render

    def render_with_error(config):
        src = real_render(config)
        if config.name == BROKEN:
            return dataclasses.replace(src, text="#error boom\n" + src.text)
        return src

    configs = [config_from_name(n) for n in NAMES + [BROKEN]]
    # Link too where this torch can (CI installs a CUDA build): one variant per family in one
    # extension, so a torch release that breaks the binding's build fails here.
    linked = build_module.preflight(link=True, jobs=2).ok
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flashcore_codegen.render, "render", render_with_error)
        result = build(configs, build_dir=build_dir, link=linked, progress=False, jobs=2)
    manifest = json.loads((build_dir / "manifest.json").read_text())
    # The broken source stays in src/ (build() would re-render and compile it next time):
    # drop it so that the incremental test sees exactly the good variants.
    (build_dir / "src" / f"{BROKEN}.cu").unlink()
    return SimpleNamespace(result=result, manifest=manifest, build_dir=build_dir, linked=linked)


@pytest.mark.nvcc
def test_all_variants_built(first_build):
    result = first_build.result
    assert sorted(result.built) == sorted(NAMES)
    assert (result.extension is not None) == first_build.linked
    assert sorted(result.compile_seconds) == sorted(NAMES)
    assert all(s > 0 for s in result.compile_seconds.values())
    for name in NAMES:
        obj = first_build.build_dir / "obj" / f"{name}.o"
        assert obj.is_file() and obj.stat().st_size > 0
        assert result.built[name] == flashcore_codegen.render.render(config_from_name(name)).source_hash


@pytest.mark.nvcc
def test_broken_variant_reports_nvcc_error(first_build):
    result = first_build.result
    assert list(result.failed) == [BROKEN]
    log = result.failed[BROKEN]
    assert "boom" in log
    assert "error" in log
    assert f"{BROKEN}.cu" in log  # nvcc names the source
    assert not (first_build.build_dir / "obj" / f"{BROKEN}.o").exists()
    assert BROKEN not in result.resources and BROKEN not in result.compile_seconds


@pytest.mark.nvcc
@pytest.mark.parametrize(
    "name",
    [
        SCALAR,
        MMA,
        PIPELINED,
        PIPELINED_LEAN,
        SM90,
    ],
)
def test_ptxas_resources_no_spills(first_build, name):
    res = first_build.result.resources[name]
    log = (first_build.build_dir / "obj" / f"{name}.o.log").read_text()
    assert "Used" in log and "registers" in log
    assert res.registers is not None and 0 < res.registers <= 255
    assert (res.spill_stores, res.spill_loads) == (0, 0), f"{name} spills: {res}"


@pytest.mark.nvcc
def test_manifest_lists_variants_with_hashes(first_build):
    manifest = first_build.manifest
    result = first_build.result
    assert (manifest["extension"] is not None) == first_build.linked
    assert manifest["failed"] == [BROKEN]
    assert sorted(manifest["variants"]) == sorted(NAMES)
    for name, info in manifest["variants"].items():
        res = result.resources[name]
        config = config_from_name(name)
        assert info == {"source_hash": result.built[name], "arch": config.ARCH, "min_cc": config.MIN_CC,
                        "registers": res.registers, "spill_stores": res.spill_stores,
                        "spill_loads": res.spill_loads}
        assert len(info["source_hash"]) == 16


@pytest.mark.nvcc
def test_tensor_core_instructions(first_build):
    cuobjdump = _find_cuobjdump()
    if cuobjdump is None:
        pytest.skip("cuobjdump not found (set CUOBJDUMP=/path/to/cuobjdump)")
    hmma = {}
    for name in NAMES:
        obj = first_build.build_dir / "obj" / f"{name}.o"
        sass = subprocess.run([cuobjdump, "-sass", str(obj)], capture_output=True, text=True, check=True).stdout
        assert "Function :" in sass, f"no SASS in {obj}"
        hmma[name] = sass.count("HMMA.")
    assert hmma[SCALAR] == 0, hmma
    assert hmma[MMA] > 0, hmma
    assert hmma[PIPELINED] > 0, hmma
    # Same MMAs in another order: the lean mainloop changes scheduling, not the math.
    assert hmma[PIPELINED_LEAN] == hmma[PIPELINED], hmma
    sass = subprocess.run([cuobjdump, "-sass", str(first_build.build_dir / "obj" / f"{SM90}.o")],
                          capture_output=True, text=True, check=True).stdout
    assert hmma[SM90] == 0 and sass.count("HGMMA.") > 0, "the sm90 family must run on wgmma"
    assert "UTMALDG" in sass and "UTMASTG" in sass, "the sm90 family must load and store by TMA"


@pytest.mark.nvcc
def test_extension_links_every_family(first_build):
    if not first_build.linked:
        pytest.skip("this torch cannot link the extension (a CPU-only build?): see flashcore doctor")
    so = first_build.result.extension
    # In a fresh process: the op namespace can be registered once per process.
    code = ("import torch, sys; torch.ops.load_library(sys.argv[1]); "
            "print(' '.join(torch.ops.flashcore.variants()))")
    proc = subprocess.run([sys.executable, "-c", code, str(so)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reported = {e.split(":")[0]: e.split(":")[1:] for e in proc.stdout.split()}
    assert sorted(reported) == sorted(NAMES)
    for name, (source_hash, arch, min_cc) in reported.items():  # the binding's view of VariantInfo
        config = config_from_name(name)
        assert (source_hash, arch, int(min_cc)) == (first_build.result.built[name], config.ARCH, config.MIN_CC)


@pytest.mark.nvcc
def test_second_build_compiles_nothing(first_build):
    # Keep last in the module: it rewrites manifest.json (the other tests use the snapshot).
    build_dir = first_build.build_dir
    objects = _mtimes(build_dir / "obj", "fc_*.o")
    sources = _mtimes(build_dir / "src", "fc_*.cu")
    assert sorted(objects) == sorted(f"{n}.o" for n in NAMES)

    again = build([config_from_name(SCALAR)], build_dir=build_dir, link=False, progress=False, jobs=2)
    assert again.compile_seconds == {}
    assert again.failed == {}
    # Variants already in the build dir stay (no prune), with the same hashes.
    assert again.built == first_build.result.built
    assert _mtimes(build_dir / "obj", "fc_*.o") == objects
    assert _mtimes(build_dir / "src", "fc_*.cu") == sources
    manifest = json.loads((build_dir / "manifest.json").read_text())
    assert manifest["failed"] == [] and sorted(manifest["variants"]) == sorted(NAMES)
