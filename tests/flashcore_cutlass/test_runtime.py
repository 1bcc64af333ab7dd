"""Runtime helpers that need no GPU."""

from __future__ import annotations

from flashcore_cutlass import api, runtime


class _FakeRegistry:
    def __init__(self):
        self.invalidated = 0

    def invalidate(self):
        self.invalidated += 1


class _FakeRuntime:
    def __init__(self):
        self.registry = _FakeRegistry()
        self.binding_forgotten = 0

    def forget_dispatch(self):
        self.binding_forgotten += 1
        return 0


def test_forget_decisions_clears_registry_and_shape_cache(monkeypatch):
    global_rt, tuned_rt = _FakeRuntime(), _FakeRuntime()
    monkeypatch.setattr(runtime, "_runtime", global_rt)
    runtime.shape_cache[("key",)] = 3
    assert api._dispatch_cache is runtime.shape_cache  # the API's hot path reads the runtime's cache
    runtime.forget_decisions(tuned_rt)
    assert runtime.shape_cache == {}
    assert (global_rt.registry.invalidated, tuned_rt.registry.invalidated) == (1, 1)
    assert (global_rt.binding_forgotten, tuned_rt.binding_forgotten) == (1, 1)  # the binding's cache too
    runtime.forget_decisions(global_rt)  # the same runtime twice is invalidated once
    assert global_rt.registry.invalidated == 2 and global_rt.binding_forgotten == 2


def test_missing_extension_names_the_build_command(tmp_path):
    import pytest

    with pytest.raises(runtime.ExtensionNotBuilt, match="flashcore build"):
        runtime.Runtime(build_dir=tmp_path)


def test_cached_shape_still_reports_bad_inputs_clearly(monkeypatch):
    """A shape already in the dispatch cache skips the Python checks; when the op then rejects
    the inputs (e.g. CPU tensors: no CPU kernel), the friendly Python error is raised."""
    import pytest
    import torch

    def op_without_cpu_kernel(*args):
        raise NotImplementedError("Could not run 'flashcore::fwd' with arguments from the 'CPU' backend")

    q = torch.randn(1, 2, 16, 64, dtype=torch.float16)
    monkeypatch.setattr(api, "_dispatch_cache", {api._shape_key(q, q, q, False): 0})
    monkeypatch.setattr(api, "_fwd", op_without_cpu_kernel)
    monkeypatch.setattr(api, "_fwd_dense", op_without_cpu_kernel)
    with pytest.raises(ValueError, match="CUDA devices only"):
        api.attention(q, q, q)


# -- refusing an extension that no longer matches ---------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from flashcore_codegen.config import config_from_name  # noqa: E402
from flashcore_codegen.render import render  # noqa: E402
from flashcore_cutlass import build as build_module  # noqa: E402
from flashcore_cutlass.env import Environment  # noqa: E402

SCALAR = "fc_scalar_fp16_d64_full_m16_w4"
TID = "nvcc=13.0.88\ncutlass=abcd"


def _manifest(**linked):
    record = {"torch": torch.__version__, "torch_cuda": "13.0", "cxx_std": "c++20",
              "nvcc_version": "13.0.88", "toolchain_id": TID, "variants": {}}
    record.update(linked)
    return {"variants": {}, "failed": [], "linked": record}


def test_variant_differences():
    good = f"{SCALAR}:{render(config_from_name(SCALAR), toolchain_id=TID).source_hash}:sm_90a:80"
    assert runtime.variant_differences([good], _manifest()) == []
    diffs = runtime.variant_differences([f"{SCALAR}:0123456789abcdef:sm_90a:80"], _manifest())
    assert diffs == [f"{SCALAR} changed (source hash 0123456789abcdef built, {good.split(':')[1]} now)"]
    # An extension that reports no compile target predates per-variant archs.
    old = good.rsplit(":", 2)[0]
    assert runtime.variant_differences([old], _manifest()) == [
        f"{SCALAR} reports no compile target (built by an older flashcore)"]
    # Built with another toolchain: the hashes differ too.
    assert runtime.variant_differences([good], _manifest(toolchain_id="nvcc=12.8")) != []
    # A family that was renamed: a "rebuild" difference, not a parse error.
    assert runtime.variant_differences(["fc_oldname_fp16_d64_full_m16_w4:0123"], _manifest()) == [
        "fc_oldname_fp16_d64_full_m16_w4 is no longer a variant of any family"]
    assert "no longer renders" in runtime.variant_differences(["fc_scalar_fp16_d96_full_m16_w4:0"], _manifest())[0]
    assert "older flashcore" in runtime.variant_differences([good], {"variants": {}})[0]


def test_binding_differences():
    """A binding built before fwd took causal_offset (or with other arguments), or before it had
    fwd_dense, fwd_pack_gqa or the hot path's dispatch cache, asks for a rebuild instead of failing
    every call with a schema error."""
    current = torch._C.parse_schema(
        "flashcore::fwd(int variant, Tensor q, Tensor k, Tensor v, float scale, Tensor? out=None, Tensor? lse=None,"
        " int causal_offset=0, int? left_offset=None, float softcap=0.0, Tensor? cu_seqlens_q=None,"
        " Tensor? cu_seqlens_k=None, int max_seqlen_q=0, int max_seqlen_k=0, bool bottom_right=False,"
        " bool lse_unused=False) -> (Tensor, Tensor)")
    dense = torch._C.parse_schema("flashcore::fwd_dense(int variant, Tensor q, Tensor k, Tensor v, float scale,"
                                  " int causal_offset=0, bool lse_unused=False) -> (Tensor, Tensor)")
    pack = torch._C.parse_schema("flashcore::fwd_pack_gqa(int variant, Tensor q, Tensor k, Tensor v, float scale,"
                                 " int key_begin, int key_end, float softcap=0.0) -> (Tensor, Tensor)")
    cache = {name: torch._C.parse_schema(f"flashcore::{name}{schema}") for name, schema in (
        ("fwd_cached", "(Tensor q, Tensor k, Tensor v, int mask, float? scale=None, bool gqa_ok=True,"
                       " bool lse_unused=False) -> (Tensor, Tensor)"),
        ("remember_dispatch", "(Tensor q, Tensor k, Tensor v, int mask, int variant, bool pack_gqa=False,"
                              " int key_begin=0, int key_end=0) -> bool"),
        ("forget_dispatch", "() -> int"), ("dispatched_shapes", "() -> int"))}
    ops = {"fwd": current, "fwd_dense": dense, "fwd_pack_gqa": pack, **cache}
    assert runtime.binding_differences(ops) == []
    old = torch._C.parse_schema("flashcore::fwd(int variant, Tensor q, Tensor k, Tensor v, float scale,"
                                " Tensor? out=None, Tensor? lse=None) -> (Tensor, Tensor)")
    assert runtime.binding_differences(ops | {"fwd": old}) == [
        "its flashcore::fwd takes (variant, q, k, v, scale, out, lse), this flashcore passes"
        " (variant, q, k, v, scale, out, lse, causal_offset, left_offset, softcap, cu_seqlens_q, cu_seqlens_k,"
        " max_seqlen_q, max_seqlen_k, bottom_right, lse_unused)"]
    without = lambda name: {op: schema for op, schema in ops.items() if op != name}  # noqa: E731
    assert runtime.binding_differences(without("fwd_dense")) == ["it has no flashcore::fwd_dense"]
    assert runtime.binding_differences(without("fwd_pack_gqa")) == ["it has no flashcore::fwd_pack_gqa"]
    # A binding from before the hot path's dispatch cache: rebuild.
    assert runtime.binding_differences({"fwd": current, "fwd_dense": dense, "fwd_pack_gqa": pack}) == [
        f"it has no flashcore::{name}" for name in cache]


def test_direct_call_skips_the_overload_frame_only_where_safe():
    """The hot path calls the C++ op object behind an OpOverload; an overload without one, or
    one with a Python dispatcher, is called as it is."""
    overload = torch.ops.aten.neg.default
    direct = runtime.direct_call(overload)
    x = torch.tensor([1.0, -2.0])
    assert torch.equal(direct(x), -x)
    assert direct is getattr(overload, "_op", overload) or direct is overload

    class Wrapped:
        _op = object()
        _pyobj_dispatcher = object()

    wrapped = Wrapped()
    assert runtime.direct_call(wrapped) is wrapped
    assert runtime.direct_call(len) is len  # no _op at all


def test_torch_differences():
    assert runtime.torch_differences(_manifest()) == []
    assert runtime.torch_differences(_manifest(torch="2.4.0+cu121")) == [f"torch 2.4.0+cu121 then, {torch.__version__} now"]
    assert "records no torch" in runtime.torch_differences({"variants": {}})[0]


def test_stale_message():
    msg = runtime.stale_message(Path("/b"), [f"d{i}" for i in range(8)])
    assert msg == ("the flashcore extension in /b was built from other sources/torch"
                   " (d0; d1; d2; d3; d4; d5; and 2 more): rebuild: flashcore build")


def test_device_checks(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(runtime.UnsupportedDevice, match="CPU-only build"):
        runtime.check_device()
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(runtime.UnsupportedDevice, match="torch sees none"):
        runtime.check_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A100")
    # Which capabilities run the kernels is the built variants' call (test_no_runnable_variant...).
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert runtime.check_device() == (8, 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert runtime.check_device() == (9, 0)


def test_parse_reported():
    from flashcore_cutlass.eligibility import Target

    assert runtime.parse_reported("fc_x:abcd:sm_90a:80") == ("fc_x", "abcd", Target("sm_90a", 80))
    assert runtime.parse_reported("fc_x:abcd") == ("fc_x", "abcd", None)
    assert runtime.parse_reported("fc_x:abcd:sm_90a:") == ("fc_x", "abcd", None)


def test_no_runnable_build_message():
    from flashcore_cutlass.eligibility import Target, no_runnable_build_message

    msg = no_runnable_build_message("/b", [Target("sm_90a", 80), Target("sm_90a", 90)], (8, 6), "NVIDIA A10")
    assert msg == (
        "the flashcore extension in /b holds variants for sm_90a (compute capability 9.0 only: H100/H200);"
        " the current device (NVIDIA A10) is sm_86: run on a GPU they were built for (select it with"
        " CUDA_VISIBLE_DEVICES or torch.cuda.set_device); no kernel family compiles for sm_86 yet"
        " (every family targets sm_90a)"
    )


def test_no_device_is_reported_after_a_missing_build(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(runtime.ExtensionNotBuilt):
        runtime.Runtime(build_dir=tmp_path)
    (tmp_path / build_module.EXTENSION_NAME).write_bytes(b"")
    with pytest.raises(runtime.UnsupportedDevice):
        runtime.Runtime(build_dir=tmp_path)


@pytest.fixture
def sm90(monkeypatch, tmp_path):
    """Pretend to run on an H100 (no GPU is touched before the extension's checks pass)."""
    monkeypatch.setattr(runtime, "check_device", lambda: (9, 0))
    monkeypatch.setattr(Environment, "current", classmethod(lambda cls, device=None: cls("H100", 132, "13.0", torch.__version__, "4.2.0")))
    monkeypatch.setenv("FLASHCORE_CACHE_DIR", str(tmp_path / "cache"))


def test_other_torch_is_refused_before_loading(tmp_path, sm90, monkeypatch):
    (tmp_path / build_module.EXTENSION_NAME).write_bytes(b"not a library")
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest(torch="2.9.0+cu128")))
    monkeypatch.setattr(torch.ops, "load_library", lambda path: pytest.fail("loaded a stale extension"))
    with pytest.raises(runtime.StaleExtension, match=r"torch 2\.9\.0\+cu128 then, .* now\): rebuild: flashcore build"):
        runtime.Runtime(build_dir=tmp_path)


def test_extension_that_does_not_load_says_rebuild(tmp_path, sm90):
    (tmp_path / build_module.EXTENSION_NAME).write_bytes(b"not a library")
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    with pytest.raises(runtime.StaleExtension, match=r"it does not load: .*\): rebuild: flashcore build"):
        runtime.Runtime(build_dir=tmp_path)


def test_old_manifest_says_rebuild(tmp_path, sm90):
    (tmp_path / build_module.EXTENSION_NAME).write_bytes(b"not a library")
    (tmp_path / "manifest.json").write_text(json.dumps({"extension": "x", "variants": {}, "failed": []}))
    with pytest.raises(runtime.StaleExtension, match="rebuild: flashcore build"):
        runtime.Runtime(build_dir=tmp_path)


# -- with nvcc: a real extension, linked against this torch, loaded without a GPU --------------

@pytest.fixture(scope="module")
def linked_build(tmp_path_factory):
    if torch.version.cuda is None:
        pytest.skip("needs a CUDA build of torch to link")
    pf = build_module.preflight(link=True, jobs=2)
    if not pf.ok:
        pytest.skip("cannot link here: " + "; ".join(pf.problems))
    build_dir = tmp_path_factory.mktemp("fc_linked")
    result = build_module.build([config_from_name(SCALAR)], build_dir=build_dir, jobs=2, progress=False)
    return result


@pytest.mark.nvcc
def test_links_with_this_torch(linked_build):
    assert linked_build.extension == linked_build.build_dir / build_module.EXTENSION_NAME
    assert linked_build.extension.is_file()
    manifest = build_module.read_manifest(linked_build.build_dir)
    assert manifest["linked"]["torch"] == torch.__version__
    assert manifest["linked"]["cxx_std"] == build_module.binding_cxx_std()
    assert manifest["linked"]["variants"] == linked_build.built
    ninja = (linked_build.build_dir / "build.ninja").read_text()
    assert f"-std={build_module.binding_cxx_std()}" in ninja
    assert f"-I{build_module.cuda_home() / 'include'}" in ninja


@pytest.mark.nvcc
def test_runtime_loads_a_current_extension_and_refuses_a_changed_one(linked_build, sm90):
    rt = runtime.Runtime(build_dir=linked_build.build_dir)
    assert rt.hashes == linked_build.built
    # Templates changed since the build (here: the recorded toolchain no longer reproduces the
    # hash, which is the same comparison): refused, naming the variant.
    path = linked_build.build_dir / "manifest.json"
    original = path.read_text()
    manifest = json.loads(original)
    manifest["linked"]["toolchain_id"] += "\nedited"
    path.write_text(json.dumps(manifest))
    try:
        with pytest.raises(runtime.StaleExtension, match=rf"{SCALAR} changed .*: rebuild: flashcore build"):
            runtime.Runtime(build_dir=linked_build.build_dir)
    finally:
        path.write_text(original)  # the build is shared by the module's later tests


@pytest.mark.nvcc
def test_binding_reports_targets_and_checks_archs_like_python(linked_build, sm90):
    from flashcore_codegen import arch

    rt = runtime.Runtime(build_dir=linked_build.build_dir)
    assert rt.targets == {SCALAR: ("sm_90a", 80)}
    assert rt.registry.targets == rt.targets
    arch_error = torch.ops.flashcore.arch_error  # registered by the load above; needs no GPU
    for target in ("sm_90a", "sm_80", "sm_86", "sm_100a"):
        for min_cc in (80, 86, 90, 100):
            for cc in ((8, 0), (8, 6), (8, 9), (9, 0), (9, 1), (10, 0)):
                assert (arch_error(target, min_cc, *cc) == "") == arch.runs_on(target, min_cc, cc), (target, min_cc, cc)
    assert "this GPU is sm_86" in arch_error("sm_90a", 80, 8, 6)


@pytest.mark.nvcc
def test_runtime_refuses_a_device_no_built_variant_runs(linked_build, sm90, monkeypatch):
    monkeypatch.setattr(runtime, "check_device", lambda: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A10")
    with pytest.raises(runtime.UnsupportedDevice, match=r"holds variants for sm_90a \(compute capability 9\.0 only: "
                       r"H100/H200\); the current device \(NVIDIA A10\) is sm_86: .*no kernel family compiles for"
                       r" sm_86 yet"):
        runtime.Runtime(build_dir=linked_build.build_dir)


def test_programmatic_launch_from_env():
    assert runtime.programmatic_launch_from_env({}) is True
    assert runtime.programmatic_launch_from_env({"FLASHCORE_PDL": "1"}) is True
    assert runtime.programmatic_launch_from_env({"FLASHCORE_PDL": " 0 "}) is False
    with pytest.raises(ValueError, match="FLASHCORE_PDL must be 0 or 1, got 'yes'"):
        runtime.programmatic_launch_from_env({"FLASHCORE_PDL": "yes"})
