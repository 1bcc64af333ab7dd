"""benchmarks/experiments/sm90/max_free_safe.patch on CPU: the free softmax (no row max on unmasked tiles where the
caller drops the LSE; benchmarks/NOTES.md, 2026-11-30 05:44-) still applies to today's sources, and the patched
generator marks the kernels it reaches.

The patch waits for its landing (a re-tune of the rows of the kernels it changes); a source edit that moves its context
would otherwise surface only on the GPU machine.
"""

import json
import subprocess
import sys
import textwrap

from patch_support import EXPERIMENTS, SM90, needs_git, patched_copy

PATCH = EXPERIMENTS / "max_free_safe.patch"


@needs_git
def test_the_patch_applies_and_marks_the_lazy_pv_sum_kernels(tmp_path):
    copy = patched_copy(tmp_path, PATCH, ("codegen", "templates", "tests", "flashcore_cutlass"))
    probe = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from codegen.config import config_from_name
        names = ("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1", "fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1_lr1",
                 "fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1", "fc_sm90_bf16_d256_full_m128_n64_s2_sch1_p1_kv1_lr1")
        print([config_from_name(n).free_softmax for n in names])
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, True, False, False]"
    sm90 = copy.joinpath(*SM90)
    mainloop = (sm90 / "mainloop.cuh").read_text()
    assert "p.lse_unused != 0 && softmax.try_free(s, scale_log2, corr)" in mainloop
    assert "__noinline__ static void recompute_scores" in mainloop
    assert "CUTE_DEVICE bool try_free(" in (sm90 / "softmax.cuh").read_text()
    assert "def test_free_softmax_without_lse" in (copy / "tests" / "flashcore_cutlass" / "test_kernels_gpu.py").read_text()
    # It carries the shipped table with the rows of the kernels it leaves byte-identical rekeyed (rekey_shipped.py):
    # the free kernels' 43 rows stay stale until a re-tune.
    table = json.loads((copy / "flashcore_cutlass" / "data" / "tuned_h200.json").read_text())
    assert table["provenance"]["rekeyed_at"] == "max_free_safe.patch on a35aa5d"
