"""Shared pytest setup. Fixtures live in the test modules (the GPU modules' runtime fixture in
tests/flashcore_cutlass/conftest.py); this only reports, in pytest's header, which optional toolchains the run can use (nvcc/CUTLASS for `-m nvcc`, a GPU for `-m gpu`)."""

from __future__ import annotations


def pytest_report_header(config):
    try:
        from flashcore_cutlass.build import BuildError, cutlass_include_dir, find_nvcc

        try:
            toolchain = f"nvcc {find_nvcc()}, CUTLASS {cutlass_include_dir()}"
        except BuildError as exc:
            toolchain = f"unavailable ({exc}): nvcc tests skip"
    except Exception as exc:  # never break collection over a header line
        toolchain = f"unknown ({exc!r})"
    try:
        import torch

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none: gpu tests skip"
    except Exception as exc:
        gpu = f"unknown ({exc!r})"
    return [f"flashcore toolchain: {toolchain}", f"flashcore GPU: {gpu}"]
