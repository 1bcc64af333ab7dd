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


def test_forget_decisions_clears_registry_and_shape_cache(monkeypatch):
    global_rt, tuned_rt = _FakeRuntime(), _FakeRuntime()
    monkeypatch.setattr(runtime, "_runtime", global_rt)
    monkeypatch.setattr(api, "_dispatch_cache", {("key",): 3})
    runtime.forget_decisions(tuned_rt)
    assert api._dispatch_cache == {}
    assert (global_rt.registry.invalidated, tuned_rt.registry.invalidated) == (1, 1)
    runtime.forget_decisions(global_rt)  # the same runtime twice is invalidated once
    assert global_rt.registry.invalidated == 2


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
    monkeypatch.setattr(api, "_dispatch_cache", {(q.dtype, False, 1, 2, 16, 64, 16): 0})
    monkeypatch.setattr(api, "_fwd", op_without_cpu_kernel)
    with pytest.raises(ValueError, match="CUDA devices only"):
        api.attention(q, q, q)
