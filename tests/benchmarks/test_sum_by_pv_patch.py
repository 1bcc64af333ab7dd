"""benchmarks/experiments/sm90/sum_by_pv.patch on CPU: the row sums by the PV GEMM (N = Dv + 8 over a ones atom per
V stage; measured faster at the power cap, not yet shipped: the shipped table would need its re-tune) still apply to
today's sources with the resource model that mirrors them, and today's sources do not carry them.

The patch is how sum_by_pv.sh's experiment is run and how the change lands (benchmarks/NOTES.md, 2026-11-30); a
header edit that moves its context would otherwise surface only on the GPU machine.
"""

from patch_support import EXPERIMENTS, ROOT, SM90, needs_git, patched_copy

PATCH = EXPERIMENTS / "sum_by_pv.patch"


@needs_git
def test_the_patch_applies_and_takes_the_sums_from_the_pv_gemm(tmp_path):
    patched_copy(tmp_path, PATCH, ("templates", "codegen", "tests", "flashcore_cutlass"))
    sm90 = tmp_path.joinpath(*SM90)
    assert "m64n136k16" in (sm90 / "sum_pv_wgmma.cuh").read_text()
    assert "SumPvWgmma<kPVN, Element>::fma" in (sm90 / "mainloop.cuh").read_text()
    assert "static constexpr int kVPad" in (sm90 / "traits.cuh").read_text()
    assert "def v_pad_columns(self)" in (tmp_path / "codegen" / "families.py").read_text()
    # The shipped rows of the kernels it leaves byte-identical move to the new hashes (rekey_shipped.py).
    table = (tmp_path / "flashcore_cutlass" / "data" / "tuned_h200.json").read_text()
    assert '"rekeyed_at": "745e0b6+sum_by_pv.patch"' in table


def test_todays_sources_sum_rows_on_the_fp32_pipe():
    sm90 = ROOT.joinpath(*SM90)
    assert not (sm90 / "sum_pv_wgmma.cuh").exists()
    assert "sum += p;" in (sm90 / "softmax.cuh").read_text()
