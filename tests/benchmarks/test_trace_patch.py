"""benchmarks/experiments/sm90/trace/trace_patch.py on CPU: its hooks still fit the shipped headers.

The tile trace (trace_tiles.cu) runs on a copy of templates/include with timestamp hooks inserted at
fixed anchors; a header edit that moves an anchor would otherwise surface only on the GPU machine.
"""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCH = ROOT / "benchmarks" / "experiments" / "sm90" / "trace" / "trace_patch.py"


def _load():
    spec = importlib.util.spec_from_file_location("trace_patch", PATCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_anchor_occurs_once_and_the_hooks_go_in(tmp_path):
    trace_patch = _load()
    dst = tmp_path / "include"
    trace_patch.main(str(ROOT / "templates" / "include"), str(dst))
    sm90 = dst / "flashcore" / "sm90"
    assert (sm90 / "trace_hooks.cuh").is_file()
    text = {name: (sm90 / name).read_text() for name in ("mainloop.cuh", "epilogue.cuh", "kernel_ws.cuh")}
    for event in (0, 1, 2, 3, 4, 5, 13):
        assert f"FC_T({event});" in text["mainloop.cuh"]
    assert "FC_T(16);" in text["epilogue.cuh"] and "FC_T(21);" in text["epilogue.cuh"]
    assert "Epilogue::store(p, ss, w, seq, tid, tOrO, softmax, tile_iter);" in text["kernel_ws.cuh"]
    # The shipped headers are untouched.
    assert "FC_T(" not in (ROOT / "templates" / "include" / "flashcore" / "sm90" / "mainloop.cuh").read_text()


def test_a_moved_anchor_fails_loudly(tmp_path):
    trace_patch = _load()
    src = tmp_path / "src"
    shutil.copytree(ROOT / "templates" / "include", src)
    mainloop = src / "flashcore" / "sm90" / "mainloop.cuh"
    mainloop.write_text(mainloop.read_text().replace("FullBar::wait(&ss.bar_q,", "FullBar::wait(&ss.bar_q ,"))
    with pytest.raises(SystemExit, match="anchor found 0 times"):
        trace_patch.main(str(src), str(tmp_path / "dst"))
