#!/usr/bin/env bash
# Untuned short-query / long-key shapes: what the heuristic picks (registry.preferred_splits) and
# every built non-causal variant's kernel and graph time there (kernel_times.py), fp16 D64/D128.
# Run on the device with a default build carried in build/cache/build (see benchmarks/NOTES.md).
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/tmp/flashcore_out}; mkdir -p "$OUT"
[ -d /tmp/site/cutlass_library ] || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1
SHAPES="1,8,64,2048 1,4,64,16384 2,16,64,8192 1,8,256,8192 1,16,128,16384 1,8,64,1024 1,2,128,32768"
python3 - $SHAPES <<'PY' | tee "$OUT/heuristic_choices.txt"
import sys
from flashcore_cutlass.runtime import get_runtime
from flashcore_cutlass.problem import Problem
rt = get_runtime()
for d in (64, 128):
    for shape in sys.argv[1:]:
        b, h, sq, sk = map(int, shape.split(","))
        c = rt.registry.choose(Problem("fp16", d, False, b, h, sq, sk))
        print(f"D{d} {shape}: {c.variant} ({c.reason})")
PY
for d in 64 128; do
  args=""; for s in $SHAPES; do args="$args --shape $s,$d"; done
  python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 $args --json "$OUT/kernel_times_d$d.json" 2>"$OUT/kt_d$d.err" | tee "$OUT/kernel_times_d$d.txt"
done
