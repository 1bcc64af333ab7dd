"""Compiling generated variants with nvcc (no GPU needed): one representative per family,
built once per module (~3 minutes on 2 cores), plus the failure path and incremental
rebuilds. The pure-Python helpers are tested without nvcc."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import flashcore_codegen.render
from flashcore_codegen.config import config_from_name
from flashcore_cutlass import build as build_module
from flashcore_cutlass.build import BuildError, Resources, build, parse_ptxas

SCALAR = "fc_scalar_fp16_d64_full_m16_w4"
MMA = "fc_mma_bf16_d128_full_m64_n64_w4"  # fp16 d64 m64 spills 4 B: see benchmarks/NOTES.md
PIPELINED = "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean0"
PIPELINED_LEAN = "fc_pipelined_bf16_d64_full_m128_n64_w4_s2_lean1"  # the register-lean mainloop axis
NAMES = [SCALAR, MMA, PIPELINED, PIPELINED_LEAN]
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


def test_default_jobs_is_positive():
    assert 1 <= build_module.default_jobs() <= (os.cpu_count() or 1)


def test_read_manifest_of_empty_dir(tmp_path):
    assert build_module.read_manifest(tmp_path) == {"variants": {}, "failed": []}


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
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codegen.render, "render", render_with_error)
        result = build(configs, build_dir=build_dir, link=False, progress=False, jobs=2)
    manifest = json.loads((build_dir / "manifest.json").read_text())
    # The broken source stays in src/ (build() would re-render and compile it next time):
    # drop it so that the incremental test sees exactly the good variants.
    (build_dir / "src" / f"{BROKEN}.cu").unlink()
    return SimpleNamespace(result=result, manifest=manifest, build_dir=build_dir)


@pytest.mark.nvcc
def test_all_variants_built(first_build):
    result = first_build.result
    assert sorted(result.built) == sorted(NAMES)
    assert result.extension is None  # link=False
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
    assert manifest["extension"] is None
    assert manifest["failed"] == [BROKEN]
    assert sorted(manifest["variants"]) == sorted(NAMES)
    for name, info in manifest["variants"].items():
        res = result.resources[name]
        assert info == {"source_hash": result.built[name], "registers": res.registers,
                        "spill_stores": res.spill_stores, "spill_loads": res.spill_loads}
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
