"""benchmarks/experiments/sm90/ncu_sass_summary.py on CPU: opcode and stall tallies of an Nsight Compute source page."""

import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks" / "experiments" / "sm90"))

import ncu_sass_summary as mod  # noqa: E402

# The shape of `ncu --csv --page source --print-source sass`: the kernel's name, the header, one row an instruction
# (only the columns the script reads; ncu prints ~65).
PAGE = textwrap.dedent('''\
    "Kernel Name","k"
    "Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed","stall_wait","stall_barrier"
    "0x10","      MUFU.EX2 R1, R1","6","30","5","1"
    "0x20","      @!P0  MUFU.EX2 R2, R2","2","10","2","0"
    "0x30","      FADD.FTZ R3, R1, R2","0","40","0","0"
    "0x40","      WARPGROUP.DEPBAR.LE gsb0, 0x0","12","20","0","12"
''')


def test_tallies_by_opcode_and_reason(tmp_path):
    page = tmp_path / "k.sass"
    page.write_text(PAGE)
    text = mod.summary(str(page))
    assert "0.00 M warp instructions, 20 stall samples" in text
    assert "MUFU 40.0%" in text and "FADD 40.0%" in text and "WARPGROUP 20.0%" in text  # a predicate is no opcode
    assert "barrier           65.0%  WARPGROUP 60.0, MUFU 5.0" in text
    assert "wait              35.0%  MUFU 35.0" in text
    listing = Path(mod.listing(str(page), str(tmp_path))).read_text().splitlines()
    assert listing[1].split() == ["1", "0x20", "10", "2", "@!P0", "MUFU.EX2", "R2,", "R2"]
