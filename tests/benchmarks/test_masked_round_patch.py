"""benchmarks/experiments/sm90/masked_round.patch on CPU: the PV-sum kernels' exact LSE with one FADD a score on
masked tiles still applies to today's sources, and it replaces the per-weight rounding rather than adding to it.

The patch is how masked_round.sh's A/B can be run (benchmarks/NOTES.md, 2026-11-30 02:34-); a header edit that
moves its context would otherwise surface only on the GPU machine.
"""

import json

from patch_support import EXPERIMENTS, ROOT, SM90, needs_git, patched_copy

PATCH = EXPERIMENTS / "masked_round.patch"
PER_WEIGHT = "static_cast<float>(static_cast<Element>(p)) - p"


@needs_git
def test_the_patch_applies_and_moves_the_masked_rounding_to_the_gemm(tmp_path):
    sm90 = patched_copy(tmp_path, PATCH, ("templates", "flashcore_cutlass")).joinpath(*SM90)
    softmax = (sm90 / "softmax.cuh").read_text()
    mainloop = (sm90 / "mainloop.cuh").read_text()
    assert PER_WEIGHT not in softmax and "row_round[i] * corr[i] - sum" in softmax
    # Both PV GEMMs of the overlapped loop (the loop's and the last tile's) note what a masked P added.
    assert mainloop.count("note_pv_before(p_masked);") == 2 and mainloop.count("note_pv_after(p_masked,") == 2
    # It also writes the PV-sum wgmma once a shape, for both input types.
    wgmma = (sm90 / "sum_pv_wgmma.cuh").read_text()
    assert wgmma.count("asm volatile") == 1 and 'FLASHCORE_SUM_PV_WGMMA_N136(cutlass::half_t, "f16")' in wgmma
    # It carries the shipped table with the rows of unchanged kernels moved to the patched hashes.
    table = json.loads((tmp_path / "flashcore_cutlass" / "data" / "tuned_h200.json").read_text())
    assert table["provenance"]["rekeyed_at"].endswith("+masked_round.patch")
    # The tree itself still rounds each weight (the A of the A/B).
    shipped = ROOT.joinpath(*SM90, "softmax.cuh").read_text()
    assert PER_WEIGHT in shipped
