"""`flashcore` command line: codegen, build, tune, table, variants, doctor.

Every failure is one message on stderr (what is wrong, how to fix it) and a non-zero exit
status; `--debug` (or FLASHCORE_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from flashcore_codegen import families  # noqa: F401  (registers the families)
from flashcore_codegen.config import DTYPES, FAMILIES, all_head_dims, config_from_name
from flashcore_codegen.space import all_configs, default_configs, select, spill_note

from . import __version__

NO_MATCH = "no variant matches these filters"
GLOB_CHARS = set("*?[")


class CliError(Exception):
    """A failure the user can fix: printed as one message, exit status 1."""


def _number_at_least(kind, minimum, strict: bool = False):
    """An argparse type: ``kind`` (int or float) >= ``minimum`` (> with ``strict``), finite."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not (value > minimum if strict else value >= minimum) or value == float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {minimum}"
                                             f"{' and finite' if kind is float else ''}, got {text}")
        return value
    return parse


_positive_int = _number_at_least(int, 1)
_nonnegative_int = _number_at_least(int, 0)
_positive_float = _number_at_least(float, 0, strict=True)
_nonnegative_float = _number_at_least(float, 0)


def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "variant filters (repeatable; a variant must match every filter given). They narrow the "
        "curated default set, or the whole valid space with --all; an exact name in --only is "
        "taken as named")
    g.add_argument("--family", action="append", choices=sorted(FAMILIES), help="kernel family")
    g.add_argument("--dtype", action="append", choices=DTYPES)
    g.add_argument("--head-dim", action="append", type=int, choices=all_head_dims())
    g.add_argument("--causal", dest="causal", action="store_true", default=None, help="causal variants only")
    g.add_argument("--no-causal", dest="causal", action="store_false", help="non-causal variants only")
    g.add_argument("--only", action="append", metavar="NAME_OR_GLOB",
                   help="a variant name, or a glob over names (e.g. 'fc_pipelined_*_d128_*')")
    g.add_argument("--all", action="store_true", help="start from the whole valid space instead of the default set")


def _named_configs(names: list[str]):
    """Configs for exact variant names, with the reason when a name is not a valid variant."""
    configs = []
    for name in names:
        try:
            config = config_from_name(name)
        except ValueError as exc:
            raise CliError(f"{exc} (list valid names with: flashcore codegen --list --all)") from None
        errors = config.validation_errors()
        if errors:
            raise CliError(f"{name} is not a valid variant: " + "; ".join(errors))
        configs.append(config)
    return configs


def _glob_families(globs: list[str], family: list[str] | None) -> list[str] | None:
    """The families a variant must be of to pass ``--family`` and match one of ``globs``: a glob
    whose family part is spelled out (``fc_mma_*``) matches only that family's names (family
    names hold no "_"); None where the filters leave every family open, [] where none passes."""
    spelled = set()
    for glob in globs:
        parts = glob.split("_", 2)
        if len(parts) < 3 or parts[0] != "fc" or GLOB_CHARS & set(parts[1]):
            return family
        spelled.add(parts[1])
    return sorted(spelled & set(family) if family else spelled) if globs else family


def _selected(args):
    """Filters narrow the default set (or the whole valid space with --all); exact names in
    --only are taken as named, so `--only <name>` builds that variant wherever it lives."""
    only = args.only or []
    exact = [o for o in only if not GLOB_CHARS & set(o)]
    globs = [o for o in only if GLOB_CHARS & set(o)]
    named = _named_configs(exact)
    # Enumerate only what the filters leave: the whole space takes tens of seconds.
    narrow = dict(family=_glob_families(globs, args.family), dtype=args.dtype, head_dim=args.head_dim,
                  causal=args.causal)
    picked = []
    if globs or not exact:
        base = all_configs(**narrow) if args.all else default_configs()
        picked = select(base, args.family, args.dtype, args.head_dim, args.causal, globs or None)
    picked += select(named, args.family, args.dtype, args.head_dim, args.causal)
    configs = sorted({c.name: c for c in picked}.values(), key=lambda c: c.name)
    if not configs:
        hint = "list the valid names with: flashcore codegen --list --all"
        if not args.all and select(all_configs(**narrow), only=globs or None):
            hint = "the default set has none, the whole valid space has some: add --all"
        raise CliError(f"{NO_MATCH} ({hint})")
    return configs


def _build_dir(args) -> Path:
    from .build import default_build_dir

    return Path(args.build_dir).expanduser() if getattr(args, "build_dir", None) else default_build_dir()


def cmd_codegen(args) -> int:
    from flashcore_codegen.render import generate

    configs = _selected(args)
    if args.list:
        for c in configs:
            print(c.name)
        return 0
    out = Path(args.out) if args.out else _build_dir(args) / "src"
    result = generate(configs, out)
    print(f"{len(result.sources)} variants in {out}: {len(result.written)} written, "
          f"{len(result.sources) - len(result.written)} unchanged")
    return 0


def _dry_run(configs, build_dir: Path, jobs: int) -> int:
    """What `build` would do: every selected name, whether it compiles or is up to date, and
    the estimated time from the measured per-variant compile cost of each family."""
    from flashcore_codegen.render import render

    from .build import read_manifest

    built = read_manifest(build_dir).get("variants", {})
    todo = []
    for c in configs:
        up_to_date = built.get(c.name, {}).get("source_hash") == render(c).source_hash and \
            (build_dir / "obj" / f"{c.name}.o").exists()
        print(f"{c.name}  {'up to date' if up_to_date else 'compile'}")
        if not up_to_date:
            todo.append(c)
    seconds = sum(c.build_seconds() for c in todo)
    print(f"{len(configs)} variants selected, {len(todo)} to compile: about {seconds / jobs / 60:.1f} min with "
          f"{jobs} jobs ({seconds / 60:.1f} min on one core; measured per-variant cost); nothing was built")
    return 0


def cmd_build(args) -> int:
    from .build import build, default_jobs

    configs = _selected(args)
    build_dir = _build_dir(args)
    if args.dry_run:
        return _dry_run(configs, build_dir, args.jobs or default_jobs())
    result = build(configs, build_dir, jobs=args.jobs, link=not args.no_link, progress=not args.quiet,
                   prune=args.prune)
    for name, log in sorted(result.failed.items()):
        print(f"\nFAILED {name}:\n{log.strip()}", file=sys.stderr)
    spilling = {n: r for n, r in result.resources.items() if r.spills}
    explained = {n for n in spilling if spill_note(n)}
    for name, r in sorted(spilling.items()):
        if name not in explained:
            print(f"warning: {name} spills {r.spill_stores} B / reloads {r.spill_loads} B (registers {r.registers})",
                  file=sys.stderr)
    if explained:
        print(f"note: {len(explained)} curated variants spill a little and win shapes anyway "
              "(measured; see `flashcore variants`)", file=sys.stderr)
    compiled = result.compile_seconds
    per = f", {sum(compiled.values()) / len(compiled):.0f} s per compiled variant" if compiled else ""
    print(f"built {len(result.built)} variants ({len(compiled)} compiled now{per}) in {result.wall_seconds:.0f} s; "
          f"{len(result.failed)} failed" + (f"; extension: {result.extension}" if result.extension else ""))
    return 1 if result.failed else 0


def _call_head_dim(text: str) -> int:
    """A call's head dim (tune --shape): any multiple of 8 up to the largest variant's, as attention() takes."""
    value = _positive_int(text)
    largest = max(all_head_dims())
    if value % 8 or value > largest:
        raise argparse.ArgumentTypeError(f"head dims are multiples of 8 up to {largest}, got {value}")
    return value


def _parse_shape(text: str):
    try:
        b, h, sq, sk = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be B,H,Sq,Sk (e.g. 4,16,4096,4096), got {text!r}")
    if min(b, h, sq, sk) < 1:
        raise argparse.ArgumentTypeError(f"every size in B,H,Sq,Sk must be >= 1, got {text!r}")
    return b, h, sq, sk


def _as_dispatched(problem, heads_k: int):
    """The problem dispatch runs for ``problem`` with ``heads_k`` key/value heads: decoding (one
    query row per head) with grouped-query heads runs packed (problem.gqa_packed), with a key of its
    own; 1 < Sq < 64 runs with each group's heads packed into rows where a variant that packs is
    built (problem.gqa_row_packed); other problems keep their key/value heads (heads_kv: the key's
    gqa<R>, the row's Hkv)."""
    import dataclasses

    from .problem import dispatched_problem
    from .runtime import get_runtime

    dispatched = dispatched_problem(problem, heads_k, lambda p: get_runtime().has_candidates(p))
    called = dataclasses.replace(problem, heads_kv=heads_k)
    if dispatched.group > 1:
        print(f"{called} runs with each group's query heads packed into rows (key {dispatched.key})", file=sys.stderr)
    elif dispatched.heads != problem.heads:
        print(f"{called} runs packed: tuning {dispatched} (key {dispatched.key})", file=sys.stderr)
    return dispatched


# flashcore tune's suites: name -> the function of flashcore_cutlass.tune that lists its problems
# (looked up when tuning: that module imports torch, the parser must not).
TUNE_SUITES = {"default": "default_suite", "grid": "baseline_grid", "small": "small_shapes",
               "long-keys": "long_key_shapes", "few-cta": "few_cta_shapes", "decode": "decode_shapes",
               "gqa-decode": "gqa_decode_shapes", "spec-decode": "spec_decode_shapes", "models": "model_shapes",
               "shipped": "shipped_suite"}


def cmd_tune(args) -> int:
    from . import tune as tune_module
    from .problem import Problem
    from .registry import build_command
    from .runtime import get_runtime
    from .tune import tune

    if args.shape:
        dtypes = args.dtype or ["bf16"]
        dims = args.head_dim or [128]
        masked_only = args.bottom_right or args.window is not None or args.softcap
        if masked_only and args.causal is False:
            print("error: --bottom-right, --window and --softcap tune masked problems: drop --no-causal",
                  file=sys.stderr)
            return 2
        masks = [True] if masked_only else [args.causal] if args.causal is not None else [False, True]
        # A causal window ends at the diagonal (right 0), as attention() applies it.
        window = None if args.window is None else (args.window, 0)
        problems = [Problem(dt, d, c, b, h, sq, sk, head_dim_v=args.head_dim_v, bottom_right=args.bottom_right,
                            window=window, softcap=args.softcap or 0.0)
                    for (b, h, sq, sk) in args.shape for dt in dtypes for d in dims for c in masks]
        if args.heads_k is not None:
            bad = sorted({p.heads for p in problems if p.heads % args.heads_k})
            if bad:
                print(f"error: --heads-k {args.heads_k} must divide the query heads H of every --shape, "
                      f"not {', '.join(map(str, bad))}", file=sys.stderr)
                return 2
            problems = [_as_dispatched(p, args.heads_k) for p in problems]
    elif args.heads_k is not None:
        print("error: --heads-k needs --shape (the suites hold problems as dispatch keys them)", file=sys.stderr)
        return 2
    elif args.head_dim_v is not None or args.bottom_right or args.window is not None or args.softcap:
        print("error: --head-dim-v, --bottom-right, --window and --softcap need --shape (the suites have none)",
              file=sys.stderr)
        return 2
    else:
        problems = getattr(tune_module, TUNE_SUITES[args.suite])()
        if args.dtype:
            problems = [p for p in problems if p.dtype in args.dtype]
        if args.head_dim:
            problems = [p for p in problems if p.head_dim in args.head_dim]
        if args.causal is not None:
            problems = [p for p in problems if p.causal == args.causal]
    rt = get_runtime()
    if args.stale_only:
        kept = _lacking_current_rows(problems, rt)
        print(f"--stale-only: {len(kept)} of {len(problems)} problems have no current shipped row here",
              file=sys.stderr)
        problems = kept
        if not problems:
            return 0
    missing = [p for p in problems if not rt.registry.candidates(p)]
    for p in missing:
        print(f"skip {p}: no built variant ({build_command(p)})", file=sys.stderr)
    results = tune(rt, [p for p in problems if p not in missing], progress=not args.quiet,
                   careful_keep=args.careful, warmup_ms=args.warmup_ms,
                   graph_below_us=tune_module.GRAPH_BELOW_US if args.graph_below_us is None else args.graph_below_us)
    failed = [r for r in results if r.winner is None]
    rejected = sum(1 for r in results for c in r.candidates if not c.ok)
    print(f"tuned {len(results)} problems; {rejected} candidate results rejected by the correctness check; "
          f"{len(failed)} problems without a correct variant; table: {rt.table.path}")
    return 1 if failed or rejected or not results else 0


def _current_identity():
    """(environment, built variant hashes) to judge rows against, or a reason why not."""
    try:
        from .runtime import get_runtime

        rt = get_runtime()
        return rt.env, rt.hashes, None
    except Exception as exc:  # no GPU, no build, stale build: rows are shown, judged against nothing
        return None, None, str(exc)


TABLE_COLUMNS = ["key", "shape", "variant", "median_us", "spread_us", "TFLOP/s", "max_err", "win", "stale", "source",
                 "gpu", "measured_at"]


def _shipped_rows(table, args, env, valid, include_stale: bool):
    """The shipped table's rows for display; ``win`` only where no tuned row of the same shape
    takes precedence (dispatch prefers the user's row of a shape measured in both tables)."""
    from dataclasses import replace

    from .shipped import default_table
    from .table import TableError

    rows = default_table().display_rows(problem_key=args.key, variant_glob=args.variant, env=env,
                                        valid_hashes=valid, include_stale=include_stale)
    try:  # over every variant: a tuned winner hidden by --variant still takes precedence
        tuned = table.rows(problem_key=args.key, env=env, valid_hashes=valid)
    except TableError:  # dispatch falls back to the shipped rows then, and so does the win column
        tuned = []
    tuned_shapes = {(r.problem_key, r.shape) for r in tuned if r.winner}
    return [replace(r, winner=False) if (r.problem_key, r.shape) in tuned_shapes else r for r in rows]


def _export_shipped(table, args, env, valid, why) -> int:
    from .shipped import export, file_name_for

    if args.all:
        raise CliError("--export-shipped exports the rows current on this machine: leave out --all")
    if why is not None:
        raise CliError(f"--export-shipped exports the rows current on this machine, and cannot tell which they are "
                       f"({why})")
    rows = [r for r in table.rows(problem_key=args.key, variant_glob=args.variant, env=env, valid_hashes=valid)
            if r.winner]
    if not rows:
        raise CliError(f"no current tuned rows to export in {table.path}: run flashcore tune first")
    path = Path(args.export_shipped)
    if path.is_dir():  # the package's name for this GPU's file
        path = path / file_name_for(env.gpu_name)
    provenance, dropped = None, []
    if args.merge:  # it names the shapes it drops (or keeps stale) itself
        rows, provenance = _merge_into_file(path, rows, env, valid, keep_stale=args.keep_stale)
    else:
        dropped = _shapes_an_export_drops(path, rows)
    path = export(rows, path, provenance)
    print(f"wrote {len(rows)} winners ({env.gpu_name}, {env.sm_count} SMs) to {path}", file=sys.stderr)
    if dropped:  # the file is replaced, not merged: say what the old one held that the new one lacks
        print(f"note: {len(dropped)} measured shapes of the file it replaced are not in it (tune them in this table "
              f"and export again to keep them): {_list(dropped)}", file=sys.stderr)
    return 0


def _merge_into_file(path: Path, rows, env, valid, keep_stale: bool = False) -> tuple[list, dict]:
    """--merge: ``rows`` plus the rows of the shipped file at ``path`` for (key, shape)s ``rows`` lack and
    current on this machine (same GPU, the variants' hashes as built, or for a variant this build
    left out as today's sources give it with the build's toolchain: rows a kernel change left stale
    are dropped, never shipped), and the provenance saying what was kept from where. With
    ``keep_stale`` (--keep-stale) the stale rows stay as they are: dispatch never uses them, and a
    `tune --suite shipped --stale-only` cut short resumes from the file at their keys (the suite
    finds keys outside the default set only through their rows); the package's test of its table
    fails until they are tuned."""
    from .shipped import ShippedTableError, current_provenance, load, matches

    try:
        old = load(path)
    except ShippedTableError as exc:
        raise CliError(f"--merge: cannot read {path} ({exc})") from None
    exported = {_measured(r) for r in rows}
    others = [r for r in old.rows if _measured(r) not in exported]
    judged = _judged_hashes({r.variant for r in others}, valid)
    kept = [r for r in others if matches(r, env, judged)]
    current = {_measured(r) for r in kept}
    stale = sorted({_measured(r) for r in others} - current)
    stale_kept = [r for r in others if _measured(r) not in current] if keep_stale else []
    if stale_kept:
        print(f"note: --keep-stale keeps {len(stale)} measured shapes whose rows in {path.name} are not current "
              f"here (dispatch skips them; tune --suite shipped --stale-only and export again before shipping the "
              f"file): {_list(stale)}", file=sys.stderr)
    elif stale:
        print(f"note: --merge drops {len(stale)} measured shapes whose rows in {path.name} are not current here "
              f"(tune them and export again): {_list(stale)}", file=sys.stderr)
    provenance = current_provenance()
    if kept or stale_kept:
        was = old.provenance
        provenance["merged"] = (f"{len(rows)} rows exported at {provenance['commit']}; {len(kept)} kept from the file "
                                f"it replaced (exported at {was.get('commit', '?')}, {was.get('exported_at', '?')}; "
                                "its provenance: merged_from)"
                                + (f"; {len(stale_kept)} stale rows of it kept for a later tune --stale-only"
                                   if stale_kept else ""))
        # An object, not a JSON string: a chain of merges nests once per merge instead of escaping
        # every earlier provenance once more.
        provenance["merged_from"] = dict(was)
    return list(rows) + kept + stale_kept, provenance


def _lacking_current_rows(problems, rt) -> list:
    """tune --stale-only: the problems the shipped tables hold no current row for, a row judged as
    --merge judges it (_judged_hashes). Judged by the built variants alone, a call that built only
    the variants a change reached took every other key as stale and tuned it among those variants
    (benchmarks/NOTES.md, 2026-11-29 16:59-)."""
    from .shipped import default_table
    from .tune import lacking_current_rows

    table = default_table()
    return lacking_current_rows(problems, table, rt.env, _judged_hashes({r.variant for r in table.rows}, rt.hashes))


def _judged_hashes(variants, built) -> dict[str, str]:
    """The hash each of ``variants`` has here: as built (``built``), or for one the build left out,
    as today's sources give it (_unbuilt_hashes)."""
    return {**_unbuilt_hashes(set(variants) - set(built)), **built}


def _unbuilt_hashes(names) -> dict[str, str]:
    """The source hashes variants ``names``, which the loaded build does not hold, would be built
    with here: rendered from today's templates with the toolchain the build records ({} where that
    cannot be told). A call that built and tuned only some variants (e.g. one head dim's) then
    keeps the shipped rows of the others whose sources have not changed."""
    if not names:
        return {}
    try:
        from .runtime import get_runtime

        toolchain_id = get_runtime().toolchain_id
    except Exception:  # no GPU or no build: nothing to judge against
        return {}
    if toolchain_id is None:
        return {}
    from flashcore_codegen.config import config_from_name
    from flashcore_codegen.render import render

    hashes = {}
    for name in sorted(names):
        try:
            hashes[name] = render(config_from_name(name), toolchain_id=toolchain_id).source_hash
        except Exception:  # no longer a variant, or no longer renders: its rows stay stale
            continue
    return hashes


def _measured(row) -> tuple[str, str]:
    """What one winner of an export stands for: a key's measured shape."""
    return row.problem_key, row.shape


def _list(measured: list[tuple[str, str]], most: int = 5) -> str:
    shown = ", ".join(f"{key} [{shape}]" for key, shape in measured[:most])
    return shown + (", ..." if len(measured) > most else "")


def _shapes_an_export_drops(path: Path, rows) -> list[tuple[str, str]]:
    """(key, shape) pairs the shipped file at ``path`` holds that ``rows`` lack (none if it cannot
    be read)."""
    from .shipped import ShippedTableError, load

    try:
        old = load(path)
    except ShippedTableError:
        return []
    return sorted({_measured(r) for r in old.rows} - {_measured(r) for r in rows})


def cmd_table(args) -> int:
    from .shipped import default_paths
    from .table import TuningTable, sort_field, sort_rows

    table = TuningTable(args.db) if args.db else TuningTable()
    if args.merge and not args.export_shipped:
        raise CliError("--merge goes with --export-shipped (it keeps the shipped file's other rows)")
    if args.keep_stale and not args.merge:
        raise CliError("--keep-stale goes with --export-shipped --merge (it keeps the file's stale rows too)")
    env, valid, why = (None, None, None) if args.all else _current_identity()
    if args.export_shipped:
        return _export_shipped(table, args, env, valid, why)
    if why is not None:
        print(f"note: cannot tell current rows from stale ones ({why}); showing all rows", file=sys.stderr)
    try:
        sort_field(args.sort)
    except ValueError as exc:  # an unknown --sort column
        raise CliError(str(exc)) from None
    include_stale = args.all or why is not None
    tuned, shipped = [], []
    if args.source != "shipped":
        tuned = table.rows(problem_key=args.key, variant_glob=args.variant, env=env, valid_hashes=valid,
                           include_stale=include_stale)
    if args.source != "tuned":
        shipped = _shipped_rows(table, args, env, valid, include_stale)
    rows = sort_rows(tuned + shipped, args.sort)
    if args.winners:
        rows = [r for r in rows if r.winner]
    if args.limit:
        rows = rows[: args.limit]
    if args.json:
        from dataclasses import asdict

        json.dump([asdict(r) for r in rows], sys.stdout, indent=1)
        print()
        return 0
    # The shape without spaces ("B4_H16_Sq4096_Sk4096"), so that every cell is one word.
    body = [[r.problem_key, r.shape.replace(" ", "_"), r.variant, f"{r.median_us:.1f}", f"{r.spread_us:.1f}", f"{r.tflops:.0f}",
             f"{r.max_abs_err:.1e}", "*" if r.winner else "", "stale" if r.stale else "", r.source, r.gpu_name,
             r.measured_at[:19]] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(TABLE_COLUMNS)]
    print("  ".join(h.ljust(w) for h, w in zip(TABLE_COLUMNS, widths)))
    for row in body:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    sources = []
    if args.source != "shipped":
        sources.append(f"{sum(r.source == 'tuned' for r in rows)} tuned rows from {table.path}")
    if args.source != "tuned":
        shown, where = sum(r.source in ("shipped", "borrowed") for r in rows), default_paths()
        lent = sum(r.source == "borrowed" for r in rows)
        sources.append((f"{shown} shipped rows from {', '.join(map(str, where))}" + (
            f" ({lent} borrowed: measured on another GPU of this architecture, standing in where this GPU has "
            "no current row)" if lent else "")) if where else "no shipped rows (FLASHCORE_SHIPPED_TABLE=off)")
    print("; ".join(sources), file=sys.stderr)
    return 0


def cmd_variants(args) -> int:
    from .build import read_manifest

    build_dir = _build_dir(args)
    manifest = read_manifest(build_dir)
    if not manifest.get("variants") and not manifest.get("failed"):
        raise CliError(f"nothing is built in {build_dir}: run flashcore build (or pass --build-dir)")
    for name, info in sorted(manifest["variants"].items()):
        spill = f"spills {info['spill_stores']} B" if info["spill_stores"] else "no spills"
        note = spill_note(name) if info["spill_stores"] else None
        print(f"{name}  hash {info['source_hash']}  {info['registers']} registers, {spill}"
              + (f" ({note})" if note else ""))
    for name in manifest["failed"]:
        print(f"{name}  FAILED to compile")
    if manifest.get("link_error"):
        print(f"the extension did not link: {manifest['link_error'].strip().splitlines()[-1]}", file=sys.stderr)
    return 0


def cmd_doctor(args) -> int:
    from .doctor import report

    for line in report(_build_dir(args)):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"flashcore-cutlass {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("codegen", help="render kernel variants from templates/ (default: the curated set)")
    _add_filters(p)
    p.add_argument("--out", help="output directory (default: <build dir>/src)")
    p.add_argument("--list", action="store_true", help="print the selected names instead of writing")
    p.set_defaults(func=cmd_codegen)

    p = sub.add_parser("build", help="compile variants into the torch extension (default: the curated set)")
    _add_filters(p)
    p.add_argument("-j", "--jobs", type=_positive_int, help="parallel nvcc jobs (default: cores, ~4.5 GB RAM each)")
    p.add_argument("--build-dir", help="build directory (default: $FLASHCORE_BUILD_DIR or the cache dir)")
    p.add_argument("--no-link", action="store_true",
                   help="compile kernel objects only (no CUDA-enabled torch needed; for machines without a GPU)")
    p.add_argument("--prune", action="store_true", help="drop previously built variants not selected now")
    p.add_argument("--dry-run", action="store_true", help="list what would be built, with a time estimate")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("tune", help="check and time built variants, record the results in the tuning table")
    p.add_argument("--dtype", action="append", choices=DTYPES)
    p.add_argument("--head-dim", action="append", type=_call_head_dim,
                   help="with --shape: any multiple of 8 up to 256 (padded on the variants of the next larger "
                        "head dim); without: filters the suite (64, 128, 256)")
    p.add_argument("--heads-k", type=_positive_int, metavar="HKV",
                   help="with --shape: key/value heads (grouped-query attention), tuned on GQA inputs under the "
                        "GQA key (gqa<R>); one-query-row shapes are tuned as the packed problem dispatch runs for "
                        "them (H / HKV rows over the keys a row sees)")
    p.add_argument("--head-dim-v", type=_call_head_dim,
                   help="with --shape: V's head dim where it differs from Q/K's (e.g. --head-dim 192 --head-dim-v 128)")
    p.add_argument("--causal", dest="causal", action="store_true", default=None)
    p.add_argument("--no-causal", dest="causal", action="store_false")
    p.add_argument("--shape", action="append", type=_parse_shape, metavar="B,H,Sq,Sk",
                   help="tune these shapes (with --dtype/--head-dim/--causal; default bf16, D128, both masks)")
    p.add_argument("--bottom-right", action="store_true",
                   help="with --shape: causal aligned bottom-right (FlashAttention's, KV-cache decoding)")
    p.add_argument("--window", type=_nonnegative_int, metavar="LEFT",
                   help="with --shape: a causal sliding window of LEFT keys before the diagonal")
    p.add_argument("--softcap", type=_positive_float, help="with --shape: a logit softcap (e.g. 30)")
    p.add_argument("--suite", choices=list(TUNE_SUITES), default="default",
                   help="without --shape: the throughput grid + small shapes + short queries on long keys + "
                        "one sequence's causal prefill over few CTAs + bottom-right decoding shapes + GQA decoding "
                        "as packed problems + GQA speculative decoding (query heads packed into rows) + model "
                        "prefill shapes (default), or one of them; 'shipped': the default suite plus the exact "
                        "problems of the shipped table's other keys (re-measures every shipped key after a kernel "
                        "change)")
    p.add_argument("--careful", type=_positive_int, default=3, help="finalists timed carefully per shape (besides the key's shipped winner, "
                        "which is always timed carefully)")
    p.add_argument("--warmup-ms", type=_nonnegative_float, default=0.0,
                   help="run each finalist alone this long before its careful timing (calls timed with events), "
                        "so that it is ranked at the clocks its own power draw gives (e.g. 500, as "
                        "benchmarks/bench_sdpa.py times; default 0)")
    p.add_argument("--graph-below-us", type=_nonnegative_float, default=None, metavar="US",
                   help="time calls shorter than this as CUDA-graph replays of back-to-back calls, longer ones one "
                        "call at a time with events (default: the tuner's GRAPH_BELOW_US, 100; 0: events always)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--stale-only", action="store_true",
                   help="only the problems whose key the shipped tables hold no current row for on this machine: "
                        "after a kernel change that left some shipped rows valid (benchmarks/rekey_shipped.py), "
                        "measure the rest again (e.g. with --suite shipped); a row of a variant this build left "
                        "out counts as current where today's sources give its hash, so building only the variants "
                        "a change reached is enough")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("table", help="show the tuning table")
    p.add_argument("--key", help="problem key, e.g. bf16_d128_full_q4096_k4096_bh64")
    p.add_argument("--variant", help="variant name glob")
    p.add_argument("--all", action="store_true", help="include stale rows (other GPU/versions/sources)")
    p.add_argument("--winners", action="store_true", help="only the row dispatch uses per key and measured shape (win column)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shipped", dest="source", action="store_const", const="shipped",
                       help="only rows of the tables shipped with the package ($FLASHCORE_SHIPPED_TABLE to read "
                            "another file)")
    which.add_argument("--no-shipped", dest="source", action="store_const", const="tuned",
                       help="only rows of your tuning table")
    which.add_argument("--export-shipped", metavar="PATH",
                       help="write the current winners of your tuning table (this GPU and build; --key/--variant "
                            "narrow them) to PATH in the shipped format; a directory PATH (e.g. "
                            "flashcore_cutlass/data) gets this GPU's file, tuned_<model>.json")
    p.add_argument("--merge", action="store_true",
                   help="with --export-shipped: keep the file's rows for keys the export lacks that are current here "
                        "(after tune --stale-only, or a tune with only some variants built: a variant left out is "
                        "judged by the hash today's sources give it); rows not current here are dropped")
    p.add_argument("--keep-stale", action="store_true",
                   help="with --merge: keep the file's rows that are not current here too (dispatch skips them), so "
                        "that a tune --suite shipped --stale-only cut short resumes from the file; tune them before "
                        "shipping it")
    p.add_argument("--sort", default="key", metavar="COLUMN",
                   help="a column shown (key, variant, median_us, TFLOP/s, ...); -COLUMN (e.g. --sort -median_us) "
                        "for descending")
    p.add_argument("--limit", type=_positive_int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", help="tuning database (default: $FLASHCORE_CACHE_DIR/tuning.db)")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("variants", help="list the variants in the current build and their resources")
    p.add_argument("--build-dir")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("doctor", help="one report of this machine, the build and the tuning table (for bug reports)")
    p.add_argument("--build-dir")
    p.set_defaults(func=cmd_doctor)
    return parser


def _glue_dash_values(argv: list[str]) -> list[str]:
    """`--sort -median_us` would read as an unknown option to argparse: glue such values on."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--sort" and out[i + 1].startswith("-") and out[i + 1] != "--":
            out[i:i + 2] = [f"--sort={out[i + 1]}"]
            break
    return out


def _message(exc: BaseException) -> str:
    """One line for a known failure: what is wrong and how to fix it."""
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in (13, 20, 30)):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return (f"cannot write{where}: {exc.strerror or exc}; set FLASHCORE_CACHE_DIR (and FLASHCORE_BUILD_DIR) "
                "to a writable directory")
    return str(exc) or type(exc).__name__


def main(argv=None) -> int:
    # torch without numpy warns on import; numpy is not needed here, the warning is noise.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    argv = _glue_dash_values(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("FLASHCORE_DEBUG") == "1"
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`flashcore table | head`): stop quietly, like other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"error: {_message(exc)}", file=sys.stderr)
        # Our own errors say what to do; anything else may need the traceback to be understood.
        if not type(exc).__module__.startswith(("flashcore_cutlass", "flashcore_codegen")):
            print("(run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
