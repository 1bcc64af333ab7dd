"""benchmarks/experiments/sm90/seq_pingpong.patch on CPU: the falsified sequential ping-pong schedule (sch3) still
applies to today's sources, and the patched generator knows it.

The patch is how seq_pingpong.sh's experiment can be run again (benchmarks/NOTES.md, 2026-11-29 22:15-); a header
edit that moves its context would otherwise surface only when someone tries it on the GPU machine.
"""

import subprocess
import sys
import textwrap

from patch_support import EXPERIMENTS, needs_git, patched_copy

PATCH = EXPERIMENTS / "seq_pingpong.patch"


@needs_git
def test_the_patch_applies_and_the_generator_takes_schedule_3(tmp_path):
    copy = patched_copy(tmp_path, PATCH, ("codegen", "templates"))
    probe = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from codegen.config import config_from_name
        ok = config_from_name("fc_sm90_bf16_d64_full_m128_n128_s2_sch3_p1_kv1_lr1")
        one_wg = config_from_name("fc_sm90_bf16_d64_full_m64_n128_s2_sch3_p1_kv1_lr1")
        print(ok.validation_errors(), ok.template_params()["overlap"], ok.template_params()["pingpong"])
        print(one_wg.validation_errors())
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "[] false true"
    assert "needs at least 2 consumer warpgroups" in second
    mainloop = (copy / "templates" / "include" / "flashcore" / "sm90" / "mainloop.cuh").read_text()
    assert "softmax_step(n, corr, [&] { Sched::acquire(wg); });" in mainloop


def test_todays_sources_have_no_schedule_3():
    from codegen.config import config_from_name

    errors = config_from_name("fc_sm90_bf16_d64_full_m128_n128_s2_sch3_p1_kv1_lr1").validation_errors()
    assert errors == ["schedule=3 not in (0, 1, 2)"]
