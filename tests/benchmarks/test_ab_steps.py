"""benchmarks/experiments/sm90/ab_steps.sh on CPU: the tile A/B scripts' shared steps, run with python3 and timeout
stubbed (each logs its command line): build, the watched probe, the tests and the A/B in that order, the files under
$OUT named by the script's tag, and no tests or A/B once a probed tile fails."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SM90 = REPO_ROOT / "benchmarks" / "experiments" / "sm90"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the A/B scripts are bash")

# The probe prints one "ok" line per case, except for variants named in FAIL.
PYTHON3 = """#!/bin/bash
echo "python3 $*" >> "$STUBLOG"
if [[ "$*" == *kv_multicast_probe.py* ]]; then
  for a in "$@"; do [[ "$a" == *@* && "$a" != *"$FAIL"* ]] && echo "$a: ok max|err| 0"; done
fi
exit 0
"""
TIMEOUT = """#!/bin/bash
while [[ "$1" == -* ]]; do shift; done
echo "timeout $1" >> "$STUBLOG"; shift
exec "$@"
"""


def _run(tmp_path, script, fail="-none-"):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("python3", PYTHON3), ("timeout", TIMEOUT)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    log, out = tmp_path / "log", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STUBLOG": str(log), "OUT": str(out),
           "FAIL": fail, "QUICK": "1"}
    done = subprocess.run(["bash", str(SM90 / script)], env=env, capture_output=True, text=True)
    return done, log.read_text().splitlines(), out


def test_the_steps_in_order_with_the_tags_files(tmp_path):
    done, log, out = _run(tmp_path, "seq_pingpong.sh")
    assert done.returncode == 0, done.stderr
    calls = [line for line in log if line.startswith("python3")]
    assert [c.split()[1] for c in calls] == ["-m", "benchmarks/experiments/sm90/kv_multicast_probe.py", "-m",
                                             "benchmarks/experiments/sm90/two_ctas_ab.py"]
    assert calls[0].split()[2] == "flashcore_cutlass" and calls[2].split()[2] == "pytest"
    assert log[:1] == ["timeout 200"] and "timeout 120" in log
    assert "--only fc_sm90_bf16_d64_full_m128_n128_s2_sch3_p1_kv1_lr1" in calls[0]
    assert "fc_sm90_bf16_d128_full_m128_n128_s2_sch3_p1_kv1_lr1@8,16,2048" in calls[1]
    assert "--cell 64,512,full,m64_n128_s2_sch1_p1_kv1_c2_lr1,m192_n128_s2_sch1_p1_kv1_lr1," in calls[3]
    assert f"--json {out}/seqpp_ab.json" in calls[3]
    assert sorted(p.name for p in out.iterdir()) == ["seqpp_probe.txt", "seqpp_tests.log"]


def test_a_failed_probe_stops_before_the_tests(tmp_path):
    done, log, _ = _run(tmp_path, "wk1_d256_n80.sh", fail="m128_n80_s2_sch1_p1_kv1_lr1_wk1@")
    assert done.returncode == 1 and "a tile hung or failed" in done.stdout
    assert not any("pytest" in line or "two_ctas_ab" in line for line in log)
