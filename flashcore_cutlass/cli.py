"""`flashcore` command line: codegen, build, tune, table, variants."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flashcore_codegen import families  # noqa: F401  (registers the families)
from flashcore_codegen.config import DTYPES, FAMILIES, HEAD_DIMS
from flashcore_codegen.space import all_configs, default_configs, select


def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("variant filters (repeatable; a variant must match every filter given)")
    g.add_argument("--family", action="append", choices=sorted(FAMILIES), help="kernel family")
    g.add_argument("--dtype", action="append", choices=DTYPES)
    g.add_argument("--head-dim", action="append", type=int, choices=HEAD_DIMS)
    g.add_argument("--causal", dest="causal", action="store_true", default=None, help="causal variants only")
    g.add_argument("--no-causal", dest="causal", action="store_false", help="non-causal variants only")
    g.add_argument("--only", action="append", metavar="NAME_GLOB", help="variant names matching this glob")


def _has_filter(args) -> bool:
    return any(x is not None for x in (args.family, args.dtype, args.head_dim, args.causal, args.only))


def _selected(args, default_all: bool):
    """Filters narrow the whole valid space; with none, `--all` or the command's default set."""
    if _has_filter(args) or args.all or default_all:
        base = list(all_configs())
    else:
        base = default_configs()
    configs = select(base, args.family, args.dtype, args.head_dim, args.causal, args.only)
    if not configs:
        sys.exit("no valid variant matches these filters (see `flashcore codegen --list --all`)")
    return configs


def cmd_codegen(args) -> int:
    from flashcore_codegen.render import generate

    configs = _selected(args, default_all=True)
    if args.list:
        for c in configs:
            print(c.name)
        return 0
    out = Path(args.out) if args.out else _default_build_dir() / "src"
    result = generate(configs, out)
    print(f"{len(result.sources)} variants in {out}: {len(result.written)} written, "
          f"{len(result.sources) - len(result.written)} unchanged")
    return 0


def _default_build_dir() -> Path:
    from .build import default_build_dir

    return default_build_dir()


def cmd_build(args) -> int:
    from .build import BuildError, build

    configs = _selected(args, default_all=False)
    try:
        result = build(configs, Path(args.build_dir) if args.build_dir else None, jobs=args.jobs,
                       link=not args.no_link, progress=not args.quiet, prune=args.prune)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, log in sorted(result.failed.items()):
        print(f"\nFAILED {name}:\n{log.strip()}", file=sys.stderr)
    spilling = [n for n, r in result.resources.items() if r.spills]
    for name in spilling:
        r = result.resources[name]
        print(f"warning: {name} spills {r.spill_stores} B / reloads {r.spill_loads} B (registers {r.registers})",
              file=sys.stderr)
    compiled = result.compile_seconds
    per = f", {sum(compiled.values()) / len(compiled):.0f} s per compiled variant" if compiled else ""
    print(f"built {len(result.built)} variants ({len(compiled)} compiled now{per}) in {result.wall_seconds:.0f} s; "
          f"{len(result.failed)} failed" + (f"; extension: {result.extension}" if result.extension else ""))
    return 1 if result.failed else 0


def _parse_shape(text: str):
    try:
        b, h, sq, sk = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be B,H,Sq,Sk (e.g. 4,16,4096,4096), got {text!r}")
    return b, h, sq, sk


def cmd_tune(args) -> int:
    from .problem import Problem
    from .runtime import get_runtime
    from .tune import baseline_grid, default_suite, small_shapes, tune

    if args.shape:
        dtypes = args.dtype or ["bf16"]
        dims = args.head_dim or [128]
        masks = [args.causal] if args.causal is not None else [False, True]
        problems = [Problem(dt, d, c, b, h, sq, sk) for (b, h, sq, sk) in args.shape
                    for dt in dtypes for d in dims for c in masks]
    else:
        problems = {"default": default_suite, "grid": baseline_grid, "small": small_shapes}[args.suite]()
        if args.dtype:
            problems = [p for p in problems if p.dtype in args.dtype]
        if args.head_dim:
            problems = [p for p in problems if p.head_dim in args.head_dim]
        if args.causal is not None:
            problems = [p for p in problems if p.causal == args.causal]
    rt = get_runtime()
    missing = [p for p in problems if not rt.registry.candidates(p)]
    for p in missing:
        print(f"skip {p}: no built variant (flashcore build --dtype {p.dtype} --head-dim {p.head_dim} "
              f"{'--causal' if p.causal else '--no-causal'})", file=sys.stderr)
    results = tune(rt, [p for p in problems if p not in missing], progress=not args.quiet,
                   careful_keep=args.careful)
    failed = [r for r in results if r.winner is None]
    rejected = sum(1 for r in results for c in r.candidates if not c.ok)
    print(f"tuned {len(results)} problems; {rejected} candidate results rejected by the correctness check; "
          f"{len(failed)} problems without a correct variant; table: {rt.table.path}")
    return 1 if failed or rejected else 0


def cmd_table(args) -> int:
    from .table import TuningTable

    table = TuningTable(args.db) if args.db else TuningTable()
    env = valid = None
    try:
        from .runtime import get_runtime

        rt = get_runtime()
        env, valid = rt.env, rt.hashes
    except Exception as exc:  # no GPU or no build: show rows, judged against nothing
        if not args.all:
            print(f"note: cannot tell current rows from stale ones ({exc}); showing all rows", file=sys.stderr)
        args.all = True
    rows = table.rows(problem_key=args.key, variant_glob=args.variant, env=env, valid_hashes=valid,
                      include_stale=args.all, sort=args.sort)
    if args.winners:
        rows = [r for r in rows if r.winner]
    if args.limit:
        rows = rows[: args.limit]
    if args.json:
        from dataclasses import asdict

        json.dump([asdict(r) for r in rows], sys.stdout, indent=1)
        print()
        return 0
    headers = ["key", "variant", "median_us", "spread_us", "TFLOP/s", "max_err", "win", "stale", "gpu", "measured_at"]
    body = [[r.problem_key, r.variant, f"{r.median_us:.1f}", f"{r.spread_us:.1f}", f"{r.tflops:.0f}",
             f"{r.max_abs_err:.1e}", "*" if r.winner else "", "stale" if r.stale else "", r.gpu_name,
             r.measured_at[:19]] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in body:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(f"{len(rows)} rows from {table.path}", file=sys.stderr)
    return 0


def cmd_variants(args) -> int:
    from .build import read_manifest

    manifest = read_manifest(Path(args.build_dir) if args.build_dir else None)
    for name, info in sorted(manifest["variants"].items()):
        spill = f"spills {info['spill_stores']} B" if info["spill_stores"] else "no spills"
        print(f"{name}  hash {info['source_hash']}  {info['registers']} registers, {spill}")
    for name in manifest["failed"]:
        print(f"{name}  FAILED to compile")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flashcore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("codegen", help="render kernel variants from templates/ (default: every valid one)")
    _add_filters(p)
    p.add_argument("--all", action="store_true", help="the whole valid space (the default here)")
    p.add_argument("--out", help="output directory (default: <build dir>/src)")
    p.add_argument("--list", action="store_true", help="print the selected names instead of writing")
    p.set_defaults(func=cmd_codegen)

    p = sub.add_parser("build", help="compile variants into the torch extension (default: the curated set)")
    _add_filters(p)
    p.add_argument("--all", action="store_true", help="build the whole valid space")
    p.add_argument("-j", "--jobs", type=int, help="parallel nvcc jobs (default: cores, ~4.5 GB RAM each)")
    p.add_argument("--build-dir", help="build directory (default: $FLASHCORE_BUILD_DIR or the cache dir)")
    p.add_argument("--no-link", action="store_true", help="compile kernel objects only (no CUDA torch needed)")
    p.add_argument("--prune", action="store_true", help="drop previously built variants not selected now")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("tune", help="check and time built variants, record the results in the tuning table")
    p.add_argument("--dtype", action="append", choices=DTYPES)
    p.add_argument("--head-dim", action="append", type=int, choices=HEAD_DIMS)
    p.add_argument("--causal", dest="causal", action="store_true", default=None)
    p.add_argument("--no-causal", dest="causal", action="store_false")
    p.add_argument("--shape", action="append", type=_parse_shape, metavar="B,H,Sq,Sk",
                   help="tune these shapes (with --dtype/--head-dim/--causal; default bf16, D128, both masks)")
    p.add_argument("--suite", choices=["default", "grid", "small"], default="default",
                   help="without --shape: BASELINES.md's grid + small shapes (default), or one of them")
    p.add_argument("--careful", type=int, default=3, help="finalists timed carefully per shape")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_tune, all=False)

    p = sub.add_parser("table", help="show the tuning table")
    p.add_argument("--key", help="problem key, e.g. bf16_d128_full_q4096_k4096_bh64")
    p.add_argument("--variant", help="variant name glob")
    p.add_argument("--all", action="store_true", help="include stale rows (other GPU/versions/sources)")
    p.add_argument("--winners", action="store_true", help="only the fastest current row per key")
    p.add_argument("--sort", default="problem_key", help="column to sort by; prefix - for descending")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", help="tuning database (default: $FLASHCORE_CACHE_DIR/tuning.db)")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("variants", help="list the variants in the current build and their resources")
    p.add_argument("--build-dir")
    p.set_defaults(func=cmd_variants)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
