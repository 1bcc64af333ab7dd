"""benchmarks/experiments/sm90/sum_by_mma.patch on CPU: the falsified row sums by the tensor cores (P x ones, an
N = 8 wgmma in the PV GEMM's group) still apply to today's sources, and today's sources do not carry them.

The patch is how sum_by_mma.sh's experiment can be run again (benchmarks/NOTES.md, 2026-11-29 23:20-); a header
edit that moves its context would otherwise surface only when someone tries it on the GPU machine.
"""

from patch_support import EXPERIMENTS, ROOT, SM90, needs_git, patched_copy

PATCH = EXPERIMENTS / "sum_by_mma.patch"


@needs_git
def test_the_patch_applies_and_switches_the_row_sums_on(tmp_path):
    patched_copy(tmp_path, PATCH, ("templates",))
    sm90 = tmp_path.joinpath(*SM90)
    assert "#define FLASHCORE_SUM_BY_MMA 1" in (sm90 / "common.cuh").read_text()
    mainloop = (sm90 / "mainloop.cuh").read_text()
    assert "pv_gemm(tOrP, tOrV(_, _, _, v_state.index), tOrO, ss, tSum, mma_tid);" in mainloop
    assert "Mainloop::init_smem(ss, int(threadIdx.x), kThreads);" in (sm90 / "kernel_ws.cuh").read_text()


def test_todays_sources_sum_rows_on_the_fp32_pipe():
    sm90 = ROOT.joinpath(*SM90)
    assert "FLASHCORE_SUM_BY_MMA" not in "".join(p.read_text() for p in sm90.glob("*.cuh"))
    assert "sum += p;" in (sm90 / "softmax.cuh").read_text()
