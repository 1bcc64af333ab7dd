"""benchmarks/common.py on CPU: the GPU-state sample taken after each timing, the correctness rule."""

import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402


def test_gpu_state_parses_nvidia_smi():
    def run(cmd, **kwargs):
        assert "--query-gpu=clocks.sm,power.draw,temperature.gpu" in cmd
        return types.SimpleNamespace(stdout="1755, 612.35, 61\n")

    assert common.gpu_state(run) == {"sm_clock_mhz": 1755.0, "power_w": 612.35, "temp_c": 61.0}


@pytest.mark.parametrize("failure", [FileNotFoundError("nvidia-smi"), subprocess.TimeoutExpired("nvidia-smi", 10)])
def test_gpu_state_is_empty_when_nvidia_smi_fails(failure):
    def run(cmd, **kwargs):
        raise failure

    assert common.gpu_state(run) == {}


def test_gpu_state_is_empty_on_output_it_cannot_read():
    assert common.gpu_state(lambda cmd, **kw: types.SimpleNamespace(stdout="[N/A], [N/A], 40\n")) == {}


def test_check_passes():
    from flashcore_cutlass.tune import LSE_RTOL

    assert common.check_passes(1e-3, 2e-3, LSE_RTOL / 2, True)
    assert not common.check_passes(3e-3, 2e-3, 0.0, True)  # output off
    assert not common.check_passes(1e-3, 2e-3, 2 * LSE_RTOL, True)  # LSE off
    assert not common.check_passes(1e-3, 2e-3, 0.0, False)  # inf/NaN somewhere
    assert not common.check_passes(math.nan, 2e-3, 0.0, True)
    assert not common.check_passes(1e-3, 2e-3, math.nan, True)
