#!/usr/bin/env bash
# session 2026-11-27 14:00 call 1: build defaults, head-dim bench, all tests
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
bash benchmarks/device_run.sh build >/tmp/flashcore_dev1.txt 2>&1
tail -8 /tmp/flashcore_dev1.txt
cp /tmp/flashcore_logs/build.log $OUT/ 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests:/tmp/site_extra FLASHCORE_CACHE_DIR=$PWD/build/cache FLASHCORE_COMMIT=$(cat .commit)
python3 benchmarks/bench_head_dims.py --json $OUT/bench_head_dims.json 2>$OUT/head_dims.err | tail -40
tail -5 $OUT/head_dims.err
timeout 200 python3 -m pytest -q -p no:cacheprovider tests > $OUT/tests.log 2>&1; echo "tests rc $?"
tail -15 $OUT/tests.log
