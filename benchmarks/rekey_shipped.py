"""Carry the shipped tables' rows over a source change that leaves the kernels' machine code as it was.

A row is valid only against the source hash it was measured with; a header edit that changes no
kernel (a new part used by new variants only, a comment, host code) changes every hash of the
family all the same. A row whose kernel's SASS is byte-identical in the build it was measured on
and in a build of the current source measured the same binary: this script finds each row's kernel
(by the variant's config in its mangled sm90 name), moves the row to the current hash where the
SASS is identical, and names the rows whose kernel changed (they stay stale; tune them again):

    python benchmarks/rekey_shipped.py OLD_BUILD_DIR NEW_BUILD_DIR --commit $(git rev-parse --short=12 HEAD)

Where a change is known to reach some kernels (e.g. every multi-warpgroup tile), `--changed GLOB` (repeatable, over
variant names) leaves their rows stale without comparing them, so neither build needs those kernels. Stale rows stay
in the table on purpose: `flashcore tune --suite shipped --stale-only` then re-measures their keys, also the keys
that only the table holds (dropping the rows would drop those keys from the suite).

It rewrites every package table (flashcore_cutlass/data/tuned_*.json, one per GPU model), or the
files named with --table; all their rows must have been measured on OLD_BUILD_DIR's sources (the
GPU does not change a kernel's SASS), else nothing is written.

Each build dir holds flashcore_ext.so and its manifest (manifest.json or build_manifest.json, as
`device_run.sh` with KEEP_BUILD=1 returns them), or is a `flashcore build --no-link` directory (its
kernel objects under obj/ and its manifest.json: both builds can be made on a machine without a GPU,
nvcc and CUTLASS being those of the GPU host's). Needs cuobjdump (CUDA's, or the copy triton ships).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "flashcore_cutlass" / "data"
TABLE_PATTERN = "tuned_*.json"


def cuobjdump() -> str:
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import triton  # its NVIDIA backend ships cuobjdump

        path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    sys.exit("error: cuobjdump not found (install the CUDA toolkit, or triton, which ships a copy)")


def kernels(so: Path) -> dict[str, str]:
    """Kernel name -> its SASS text, from `cuobjdump -sass`. A function's text ends at the next
    function or the next embedded cubin's header (which an extension, holding many, prints between
    functions and an object file does not), so that an extension and a --no-link build compare."""
    text = subprocess.run([cuobjdump(), "-sass", str(so)], check=True, capture_output=True, text=True).stdout
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines(keepends=True):
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            current = m.group(1)
            if current in out:
                sys.exit(f"error: kernel {current} appears twice in {so}")
            out[current] = []
        elif line.startswith("Fatbin "):
            current = None
        elif current is not None:
            out[current].append(line)
    return {name: "".join(lines).rstrip() for name, lines in out.items()}


def build_kernels(build: Path) -> dict[str, str]:
    """kernels() of a build: its extension, or (a --no-link build) every kernel object under obj/."""
    objects = sorted((build / "obj").glob("*.o")) if (build / "obj").is_dir() else []
    if (build / "flashcore_ext.so").exists() or not objects:
        return kernels(build / "flashcore_ext.so")
    out: dict[str, str] = {}
    for obj in objects:
        for name, text in kernels(obj).items():
            if name in out and out[name] != text:
                sys.exit(f"error: kernel {name} differs between objects of {build}")
            out[name] = text
    return out


def manifest(build: Path) -> dict[str, dict]:
    for name in ("manifest.json", "build_manifest.json"):
        if (build / name).exists():
            return json.loads((build / name).read_text())["variants"]
    sys.exit(f"error: no manifest.json or build_manifest.json in {build}")


# An sm90 kernel's mangled name holds its variant's config: kernel_entry<KernelWS<Traits<Element, D,
# block_m, block_n, stages, consumer WGs, causal, overlap, pingpong, persistent, splits, CTAs per SM>,
# Mainloop, Epilogue, Scheduler>> (kernel_ws.cuh, traits.cuh); a GQA-packing variant's Traits are
# wrapped in PackGqaTraits<...> (pack_gqa.cuh), a lazy-rescale variant's in LazyRescaleTraits<...>
# (traits.cuh), a stream-K variant's in StreamKTraits<...> (stream_k.cuh), and outermost a per-warpgroup
# key range variant's in WgKeyTraits<...> (traits.cuh); a variant with a V head dim of its own has
# TraitsDv<..., Dv> instead.
_SM90_TRAITS = re.compile(r"kernel_entryINS0_8KernelWSINS0_(?:11WgKeyTraitsINS0_)?(?:13StreamKTraitsINS0_)?"
                          r"(?:14KeySplitTraitsINS0_)?"
                          r"(?:17LazyRescaleTraitsINS0_)?"
                          r"(?:13PackGqaTraitsINS0_)?(?:6Traits|8TraitsDv)IN7cutlass\d+(bfloat16_t|half_t)E"
                          r"Li(\d+)ELi(\d+)ELi(\d+)ELi(\d+)ELi(\d+)ELb([01])ELb([01])ELb([01])ELb([01])ELi(\d+)ELi(\d+)E"
                          r"(?:Li(\d+)E)?")
# A key-split variant's traits wrap the row traits: KeySplitTraits<Traits<...>, kKeyWGs>.
_KEY_SPLIT_WGS = re.compile(r"14KeySplitTraitsINS0_.*?EELi(\d+)EEENS0_16MainloopTmaWgmma")


def sm90_variant(kernel: str) -> str | None:
    """The sm90 variant whose attention kernel ``kernel`` is (None for other kernels)."""
    m = _SM90_TRAITS.search(kernel)
    if m is None:
        return None
    elem, d, bm, bn, stages, _wgs, causal, overlap, pingpong, persistent, splits, ctas, dv = m.groups()
    schedule = 2 if pingpong == "1" else 1 if overlap == "1" else 0
    name = (f"fc_sm90_{'bf16' if elem == 'bfloat16_t' else 'fp16'}_d{d}_{'causal' if causal == '1' else 'full'}"
            f"_m{bm}_n{bn}_s{stages}_sch{schedule}_p{persistent}_kv{splits}")
    return name + ("_c" + ctas if ctas != "1" else "") + ("_g1" if "EpilogueSplitGlobal" in kernel else "") + \
        ("_pq1" if "PackGqaTraits" in kernel else "") + (f"_v{dv}" if "8TraitsDv" in kernel and dv else "") + \
        (f"_ks{ks.group(1)}" if (ks := _KEY_SPLIT_WGS.search(kernel)) else "") + \
        ("_lr1" if "17LazyRescaleTraits" in kernel else "") + ("_sk1" if "13StreamKTraits" in kernel else "") + \
        ("_wk1" if "11WgKeyTraits" in kernel else "")


def rekey(table: dict, old_hashes, new_hashes, old_code, new_code, commit: str,
          changed_globs: tuple[str, ...] = ()) -> tuple[int, list[str]] | str:
    """Move ``table``'s rows (in place) to the new hashes where their kernel is unchanged: the
    number moved and the rows left stale, or an error message (the table is then untouched).
    Rows of variants matching ``changed_globs`` stay stale unexamined (their kernels changed)."""
    def known_changed(variant: str) -> bool:
        return any(fnmatch.fnmatchcase(variant, g) for g in changed_globs)

    for row in table["rows"]:
        variant = row["variant"]
        if known_changed(variant):
            continue
        if old_hashes.get(variant, {}).get("source_hash") != row["source_hash"]:
            return f"row {variant} @ {row['problem_key']} was not measured on the old build (hash {row['source_hash']})"
        if variant not in new_hashes or variant not in new_code or variant not in old_code:
            return f"{variant}'s kernel is not in both builds"
    moved, changed = 0, []
    for row in table["rows"]:
        variant = row["variant"]
        if known_changed(variant) or old_code[variant] != new_code[variant]:
            changed.append(f"{variant} @ {row['problem_key']}")
        elif new_hashes[variant]["source_hash"] != row["source_hash"]:
            row["source_hash"] = new_hashes[variant]["source_hash"]
            moved += 1
    table["provenance"]["rekeyed_at"] = commit
    table["provenance"]["rekeyed_because"] = (f"the SASS of each moved row's kernel is byte-identical in the build of "
                                              f"{commit} and in the build the row was measured on")
    return moved, changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old_build", type=Path, help="the build the shipped rows were measured on")
    ap.add_argument("new_build", type=Path, help="a build of the current source")
    ap.add_argument("--commit", required=True, help="the commit of the current source (recorded in the provenance)")
    ap.add_argument("--table", type=Path, action="append",
                    help=f"a shipped table to rewrite (repeatable; default: every {TABLE_PATTERN} in {DATA})")
    ap.add_argument("--changed", action="append", default=[], metavar="GLOB",
                    help="variants (a glob over names, repeatable) whose kernels the change is known to reach: "
                         "their rows stay stale without a comparison, so neither build needs them")
    args = ap.parse_args()
    paths = args.table or sorted(DATA.glob(TABLE_PATTERN))
    if not paths:
        print(f"error: no shipped table ({TABLE_PATTERN} in {DATA})", file=sys.stderr)
        return 1

    by_variant = []
    for build in (args.old_build, args.new_build):
        code = build_kernels(build)
        by_variant.append({v: text for name, text in code.items() if (v := sm90_variant(name)) is not None})
    old_code, new_code = by_variant
    old_hashes, new_hashes = manifest(args.old_build), manifest(args.new_build)
    results = []
    for path in paths:  # every table checked before any is written
        table = json.loads(path.read_text())
        outcome = rekey(table, old_hashes, new_hashes, old_code, new_code, args.commit, tuple(args.changed))
        if isinstance(outcome, str):
            print(f"error: {path.name}: {outcome}; no table rewritten", file=sys.stderr)
            return 1
        results.append((path, table, *outcome))
    for path, table, moved, changed in results:
        lines = [json.dumps(r) for r in sorted(table["rows"], key=lambda r: (r["variant"], r["problem_key"]))]
        head = {k: v for k, v in table.items() if k != "rows"}
        path.write_text(json.dumps(head, indent=1)[:-2] + ',\n "rows": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
        print(f"{path.name}: {moved} of {len(table['rows'])} rows moved to the current source hashes "
              f"(kernels byte-identical)")
        if changed:
            print(f"{len(changed)} rows kept their old hash (stale: their kernel changed; tune them again):",
                  *changed, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
