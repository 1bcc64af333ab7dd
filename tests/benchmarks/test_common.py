"""benchmarks/common.py on CPU: the GPU-state sample taken after each timing."""

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
