"""Which default sm90 variants earn their build time? (CPU only.)

The 5-minute bound on building the default set (issue 7) makes every default a cost. A variant
reaches a user's call through a tuned row (the package's shipped tables name the winners of every
key tuned so far) or the registry's heuristic (what an untuned shape gets); a user's own tuning
times every built default, but a tile that neither wins a shipped key nor is the heuristic's pick
for any problem has not been shown to serve anyone. Twins of the other dtype count as one tile
(fp16 calls are rarely tuned; their rows borrow nothing, so the bf16 twin's rows speak for both).

For every sm90 default, over a sweep of problems (head dims 32-256, both masks, bottom-right and
windowed causal, decoding to 32k keys, MHA / GQA / packed GQA, 1-64 sequences), counts the
heuristic's picks and the shipped rows that name it or its dtype twin; prints the ones with
neither. The SM80 families are left out: they are the roadmap's ladder (benchmarks/ladder.py),
whose problems build every tile by design.

    python benchmarks/experiments/unpicked_defaults.py [--table flashcore_cutlass/data/tuned_h200.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
from collections import Counter
from pathlib import Path

from flashcore_codegen import config_from_name
from flashcore_codegen.space import default_configs
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.registry import Registry

PACKAGE_TABLES = Path(__file__).resolve().parents[2] / "flashcore_cutlass" / "data"
HEAD_DIMS = (32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256)
SEQLENS = (1, 2, 4, 7, 16, 33, 64, 100, 128, 197, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192,
           16384, 32768)
# (batch, query heads, K/V heads)
HEADS = ((1, 8, 8), (1, 32, 32), (4, 32, 8), (8, 16, 16), (32, 32, 32), (1, 28, 4), (2, 16, 16), (64, 12, 12),
         (1, 64, 8), (16, 32, 8))


def sweep_problems():
    for dtype, d, causal in itertools.product(("fp16", "bf16"), HEAD_DIMS, (False, True)):
        for sq in SEQLENS:
            for sk in sorted({sq, max(sq, 1024), max(sq, 4096), max(sq, 32768)}):
                for (b, h, hkv), masks in itertools.product(
                        HEADS, ((None, False), (None, True), ((256, 0), True)) if causal else ((None, False),)):
                    window, bottom_right = masks
                    for group in ((1, h // hkv) if sq < 64 and h > hkv else (1,)):
                        try:
                            yield Problem(dtype=dtype, head_dim=d, causal=causal, batch=b, heads=h, seqlen_q=sq,
                                          seqlen_k=sk, bottom_right=bottom_right, window=window, group=group,
                                          heads_kv=None if group > 1 else hkv)
                        except ValueError:  # e.g. a packed group that does not divide the heads
                            continue


def twin(name: str) -> str:
    """The bf16 variant of ``name``'s tile (itself for a bf16 variant)."""
    return dataclasses.replace(config_from_name(name), dtype="bf16").name


def sm90_defaults() -> list[str]:
    return [c.name for c in default_configs() if c.family == "sm90"]


@functools.lru_cache(maxsize=1)
def heuristic_picks() -> Counter:
    """How often the heuristic (no table) ranks each sm90 default first over the sweep (~15 s)."""
    registry = Registry({n: "-" for n in sm90_defaults()}, capability=(9, 0))
    picks = Counter()
    for problem in sweep_problems():
        ranked = registry.candidates(problem)
        if ranked:
            picks[ranked[0]] += 1
    return picks


def unpicked(tables: list[Path]) -> tuple[list[str], Counter, Counter]:
    """(sm90 defaults with neither picks nor shipped rows, picks per variant, rows per bf16 twin)."""
    names = sm90_defaults()
    picks = heuristic_picks()
    rows = Counter(twin(r["variant"]) for t in tables for r in json.loads(t.read_text())["rows"])
    picked = Counter()  # per bf16 twin, both dtypes' picks
    for name, count in picks.items():
        picked[twin(name)] += count
    idle = [n for n in names if not rows[twin(n)] and not picked[twin(n)]]
    return idle, picks, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, action="append",
                        help="shipped table(s) to read (default: every tuned_*.json of the package)")
    args = parser.parse_args()
    tables = args.table or sorted(PACKAGE_TABLES.glob("tuned_*.json"))
    idle, picks, rows = unpicked(tables)
    for name in sorted(sm90_defaults()):
        print(f"{picks[name]:6d} picks {rows[twin(name)]:4d} rows (twins)  {name}")
    print(f"\n{len(idle)} sm90 defaults with neither a heuristic pick nor a shipped row: {', '.join(idle) or 'none'}")


if __name__ == "__main__":
    main()
