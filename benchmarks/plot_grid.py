"""TFLOP/s against sequence length from a bench_sdpa JSON: one panel per head dim, flashcore
against SDPA's default backend (cuDNN on our torch) and its FlashAttention-2 backend,
non-causal solid and causal dashed.

    python benchmarks/plot_grid.py RESULTS.json [--out PLOT.png]   (default: RESULTS.png)

Needs matplotlib (pip install 'flashcore-cutlass[bench]'); nothing else here does, so that
bench_sdpa.py can import this module and still write its JSON without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# bench_sdpa.py's names for the implementations -> how the plot labels and colours them.
IMPLEMENTATIONS = {
    "flashcore": ("flashcore", "tab:red"),
    "sdpa": ("SDPA default (cuDNN)", "tab:blue"),
    "sdpa_flash": ("SDPA FlashAttention-2", "tab:green"),
}
MASKS = {False: ("non-causal", "-"), True: ("causal", "--")}
INSTALL_HINT = "pip install 'flashcore-cutlass[bench]' (or: pip install matplotlib)"


def _seq_label(s: int) -> str:
    return f"{s // 1024}k" if s >= 1024 and s % 1024 == 0 else str(s)


def _title(payload: dict) -> str:
    env = payload.get("environment", {})
    dtypes = sorted({r["dtype"] for r in payload["grid"]})
    return (f"{'/'.join(dtypes)} attention forward, B·S = 16k tokens, H·D = 2048 - {env.get('gpu_name', '?')}, "
            f"commit {env.get('commit', '?')}, {env.get('measured_at', '?')[:10]}\n"
            f"torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, cuDNN {env.get('cudnn', '?')}")


def make_figure(payload: dict):
    """The figure for ``payload`` (a bench_sdpa JSON): one panel per head dim of its grid."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed (CI, the GPU machine)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    grid = payload.get("grid") or []
    if not grid:
        raise ValueError("the results hold no grid rows (run bench_sdpa.py with --grid, or without --small)")
    dims = sorted({r["head_dim"] for r in grid})
    fig, axes = plt.subplots(1, len(dims), figsize=(5.2 * len(dims), 4.6), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], dims):
        for causal, (_, style) in MASKS.items():
            cells = sorted((r for r in grid if r["head_dim"] == d and r["causal"] == causal),
                           key=lambda r: r["seqlen_q"])
            if not cells:
                continue
            seqlens = [r["seqlen_q"] for r in cells]
            for impl, (_, colour) in IMPLEMENTATIONS.items():
                ax.plot(seqlens, [r["tflops"][impl] for r in cells], style, color=colour, marker="o", markersize=3.5,
                        linewidth=1.6)
        seqlens = sorted({r["seqlen_q"] for r in grid if r["head_dim"] == d})
        ax.set_xscale("log", base=2)
        ax.set_xticks(seqlens, [_seq_label(s) for s in seqlens])
        ax.minorticks_off()
        ax.set_title(f"head dim {d}")
        ax.set_xlabel("sequence length S (Sq = Sk)")
        ax.grid(True, alpha=0.3)
    # Shared y from 0: panels compare at a glance (per-panel autoscaling would clip the others).
    top = max(r["tflops"][impl] for r in grid for impl in IMPLEMENTATIONS)
    axes[0][0].set_ylim(0, top * 1.06)
    axes[0][0].set_ylabel("TFLOP/s")
    # One legend for the figure: colour says the implementation, line style the mask.
    handles = [Line2D([], [], color=c, linewidth=2, label=label) for label, c in IMPLEMENTATIONS.values()]
    handles += [Line2D([], [], color="black", linestyle=s, label=label) for label, s in MASKS.values()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(_title(payload), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_grid(payload: dict, out: str | Path) -> Path:
    """Write the plot of ``payload`` to ``out`` (PNG); raises ImportError without matplotlib."""
    import matplotlib.pyplot as plt

    fig = make_figure(payload)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_or_explain(payload: dict, out: str | Path, log=lambda msg: print(msg, file=sys.stderr)) -> Path | None:
    """:func:`plot_grid`, or None and a note saying how to get the plot when matplotlib is missing
    (a benchmark run must not lose its numbers over a plot)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log(f"note: no plot written: matplotlib is not installed ({INSTALL_HINT}); the JSON has everything: "
            f"python benchmarks/plot_grid.py <results.json> plots it later")
        return None
    return plot_grid(payload, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a bench_sdpa JSON (benchmarks/results/bench_sdpa-*.json)")
    ap.add_argument("--out", help="PNG to write (default: the JSON's path with .png)")
    args = ap.parse_args(argv)
    source = Path(args.results)
    out = Path(args.out) if args.out else source.with_suffix(".png")
    try:
        path = plot_or_explain(json.loads(source.read_text()), out)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot plot {source}: {exc!r}" if isinstance(exc, KeyError) else
              f"error: cannot plot {source}: {exc}", file=sys.stderr)
        return 1
    if path is None:
        return 1
    print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
