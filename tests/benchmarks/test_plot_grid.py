"""benchmarks/plot_grid.py on CPU: the plot of a bench_sdpa JSON, and the note (not a failure)
when matplotlib is missing."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import plot_grid  # noqa: E402

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed: "
                                      "pip install 'flashcore-cutlass[bench]' (the test extra has it too)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def payload(dims=(64, 128, 256), seqlens=(512, 1024, 2048, 4096, 8192, 16384)):
    grid = [{"dtype": "bf16", "head_dim": d, "causal": causal, "seqlen_q": s, "seqlen_k": s,
             "tflops": {"flashcore": 100 + s / 100 + d, "sdpa": 90 + s / 100, "sdpa_flash": 80 + s / 200}}
            for d in dims for s in seqlens for causal in (False, True)]
    env = {"gpu_name": "NVIDIA H100 80GB HBM3", "commit": "abc123def456", "measured_at": "2026-11-25T22:50:11+00:00",
           "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": "91900"}
    return {"environment": env, "grid": grid, "small": []}


@needs_matplotlib
def test_one_panel_per_head_dim_with_six_lines():
    fig = plot_grid.make_figure(payload())
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["head dim 64", "head dim 128", "head dim 256"]
    for ax in axes:
        lines = ax.get_lines()
        assert len(lines) == 6  # 3 implementations x 2 masks
        assert sorted(line.get_linestyle() for line in lines) == ["-"] * 3 + ["--"] * 3
        assert list(lines[0].get_xdata()) == [512, 1024, 2048, 4096, 8192, 16384]
        assert ax.get_xscale() == "log" and ax.get_ylim()[0] == 0
    assert "NVIDIA H100 80GB HBM3" in fig._suptitle.get_text() and "abc123def456" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["flashcore", "SDPA default (cuDNN)", "SDPA FlashAttention-2", "non-causal", "causal"]


@needs_matplotlib
def test_command_line_writes_a_png_next_to_the_json(tmp_path):
    results = tmp_path / "bench_sdpa-x.json"
    results.write_text(json.dumps(payload(dims=(128,))))
    assert plot_grid.main([str(results)]) == 0
    png = results.with_suffix(".png")
    assert png.read_bytes().startswith(PNG_MAGIC)


@needs_matplotlib
def test_the_committed_results_plot():
    """The plots the README shows (one per card) exist, and each one's JSON (next to it) redraws into three
    panels."""
    import re

    names = re.findall(r"\(benchmarks/results/(bench_sdpa-[^)]+\.png)\)", (REPO_ROOT / "README.md").read_text())
    assert {n.split("-")[4] for n in names} == {"H100", "H200"}, names
    for png_name in names:
        png = REPO_ROOT / "benchmarks" / "results" / png_name
        assert png.read_bytes().startswith(PNG_MAGIC)
        fig = plot_grid.make_figure(json.loads(png.with_suffix(".json").read_text()))
        assert len(fig.get_axes()) == 3


@needs_matplotlib
def test_results_without_a_grid_are_a_message(tmp_path, capsys):
    results = tmp_path / "small-only.json"
    results.write_text(json.dumps({**payload(), "grid": []}))
    assert plot_grid.main([str(results)]) == 1
    assert "no grid rows" in capsys.readouterr().err
    assert not results.with_suffix(".png").exists()


def test_without_matplotlib_it_says_how_to_install_and_writes_nothing(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    notes = []
    assert plot_grid.plot_or_explain(payload(), tmp_path / "x.png", log=notes.append) is None
    assert len(notes) == 1 and "pip install 'flashcore-cutlass[bench]'" in notes[0]
    assert not (tmp_path / "x.png").exists()


def fake_row(p, ok=True):
    """The row bench_sdpa.bench_problem returns for ``p``, without a GPU."""
    us = {"flashcore": 100.0, "sdpa": 110.0, "sdpa_flash": 150.0}
    return {"problem": str(p), "dtype": p.dtype, "batch": p.batch, "heads": p.heads, "heads_k": p.heads_k,
            "seqlen_q": p.seqlen_q, "seqlen_k": p.seqlen_k, "head_dim": p.head_dim, "causal": p.causal,
            "variant": "fc_x", "dispatch": "shipped", "check": {"ok": ok}, "us": us,
            "tflops": {n: p.flops / t / 1e6 for n, t in us.items()}, "speedup_vs_sdpa": 1.1, "speedup_vs_flash": 1.5}


@needs_matplotlib
def test_bench_sdpa_plot_option_writes_the_json_and_the_plot(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import bench_sdpa

    def fake_bench(p, rounds, graphs, warmup_ms=0.0):  # bench_problem's row, without a GPU
        return fake_row(p)

    saved = tmp_path / "bench_sdpa-test.json"
    monkeypatch.setattr(bench_sdpa, "bench_problem", fake_bench)
    monkeypatch.setattr(bench_sdpa, "environment", lambda: payload()["environment"])
    monkeypatch.setattr(bench_sdpa, "save", lambda kind, data, json_path: saved.write_text(json.dumps(data)) and saved)
    assert bench_sdpa.main(["--grid", "--d", "128", "--plot"]) == 0
    assert f"plot: {saved.with_suffix('.png')}" in capsys.readouterr().out
    assert saved.with_suffix(".png").read_bytes().startswith(PNG_MAGIC)
    assert len(json.loads(saved.read_text())["grid"]) == 12


def test_bench_sdpa_times_the_shapes_it_is_given(tmp_path, monkeypatch, capsys):
    """--shape: each B,H,Sq,Sk with --dtype/--head-dim/--heads-k/--causal becomes one problem (no
    grid, no small shapes); the rows land under "shapes"; a failed correctness check fails the run."""
    pytest.importorskip("torch")
    import bench_sdpa

    calls = []

    def fake_bench(p, rounds, graphs, warmup_ms=0.0):
        calls.append(p)
        return fake_row(p, ok=p.seqlen_q != 333)

    saved = tmp_path / "bench_sdpa-shapes.json"
    monkeypatch.setattr(bench_sdpa, "bench_problem", fake_bench)
    monkeypatch.setattr(bench_sdpa, "environment", lambda: payload()["environment"])
    monkeypatch.setattr(bench_sdpa, "save", lambda kind, data, json_path: saved.write_text(json.dumps(data)) and saved)
    args = ["--shape", "1,28,2048,2048", "--shape", "2,28,512,4096", "--heads-k", "4", "--head-dim", "64", "--causal"]
    assert bench_sdpa.main(args) == 0
    assert [(p.batch, p.heads, p.seqlen_q, p.seqlen_k, p.head_dim, p.causal, p.dtype, p.heads_k) for p in calls] == [
        (1, 28, 2048, 2048, 64, True, "bf16", 4), (2, 28, 512, 4096, 64, True, "bf16", 4)]
    assert str(calls[0].key) == "bf16_d64_causalgqa8_q2048_k2048_bh32"  # dispatch's key: 7 query heads a K/V head
    data = json.loads(saved.read_text())
    assert len(data["shapes"]) == 2 and data["grid"] == [] and data["small"] == []
    assert "shapes geo-mean speed-up: 1.100x SDPA default" in capsys.readouterr().out
    assert bench_sdpa.main(["--shape", "1,8,333,333"]) == 1  # its check failed
    assert "CORRECTNESS CHECK FAILED" in capsys.readouterr().err
    for bad in (["--shape", "1,8,512"], ["--shape", "1,8,0,512"], ["--shape", "1,28,64,64", "--heads-k", "5"],
                ["--shape", "1,8,64,64", "--grid"], ["--heads-k", "4"], ["--shape", "1,8,64,64", "--head-dim", "36"],
                ["--shape", "1,8,64,64", "--head-dim", "264"]):
        with pytest.raises(SystemExit):
            bench_sdpa.main(bad)


def test_bench_sdpa_leaves_out_an_implementation_that_refuses_the_problem(capsys):
    """FA2 refusing a problem is named and left out of the timing; ours and SDPA's default are not
    tried beforehand (a failure of theirs surfaces where they run)."""
    pytest.importorskip("torch")
    import bench_sdpa

    calls = []

    def refuse(q, k, v, causal):
        raise RuntimeError("No available kernel. Aborting execution.\nmore")

    impls = {"flashcore": lambda *a: calls.append("ours"), "sdpa": lambda *a: calls.append("sdpa"), "sdpa_flash": refuse}
    assert list(bench_sdpa.runnable(impls, None, None, None, False)) == ["flashcore", "sdpa"]
    assert calls == []
    assert "note: sdpa_flash does not run this problem (No available kernel. Aborting execution.)" in capsys.readouterr().err
