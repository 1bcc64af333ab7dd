"""benchmarks/experiments/sm90/sum_by_mma.patch on CPU: the falsified row sums by the tensor cores (P x ones, an
N = 8 wgmma in the PV GEMM's group) still apply to today's sources, and today's sources do not carry them.

The patch is how sum_by_mma.sh's experiment can be run again (benchmarks/NOTES.md, 2026-11-29 23:20-); a header
edit that moves its context would otherwise surface only when someone tries it on the GPU machine.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git apply (outside a repository) needs git")
PATCH = ROOT / "benchmarks" / "experiments" / "sm90" / "sum_by_mma.patch"
SM90 = ("templates", "include", "flashcore", "sm90")


@needs_git
def test_the_patch_applies_and_switches_the_row_sums_on(tmp_path):
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    done = subprocess.run(["git", "apply", str(PATCH)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sm90 = tmp_path.joinpath(*SM90)
    assert "#define FLASHCORE_SUM_BY_MMA 1" in (sm90 / "common.cuh").read_text()
    mainloop = (sm90 / "mainloop.cuh").read_text()
    assert "pv_gemm(tOrP, tOrV(_, _, _, v_state.index), tOrO, ss, tSum, mma_tid);" in mainloop
    assert "Mainloop::init_smem(ss, int(threadIdx.x), kThreads);" in (sm90 / "kernel_ws.cuh").read_text()


def test_todays_sources_sum_rows_on_the_fp32_pipe():
    sm90 = ROOT.joinpath(*SM90)
    assert "FLASHCORE_SUM_BY_MMA" not in "".join(p.read_text() for p in sm90.glob("*.cuh"))
    assert "sum += p;" in (sm90 / "softmax.cuh").read_text()
