"""Fixtures shared by the GPU test modules (a module may define its own ``rt`` instead)."""

from __future__ import annotations

import pytest

from gpu_support import gpu_skip_reason


@pytest.fixture(scope="module")
def rt():
    """The loaded runtime; skips with the reason when there is no usable GPU."""
    reason = gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from flashcore_cutlass.runtime import get_runtime

    return get_runtime()
