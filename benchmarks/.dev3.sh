#!/usr/bin/env bash
# call 3: test_op_gpu failures; the heuristic's D64/D32/D40 picks against SDPA
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
BUILD_ARGS="--only fc_sm90_bf16_d64_* --only fc_sm90_bf16_d128_* --only fc_sm90_fp16_d128_causal_*" bash benchmarks/device_run.sh build >/tmp/flashcore_dev3.txt 2>&1
tail -3 /tmp/flashcore_dev3.txt
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests:/tmp/site_extra FLASHCORE_CACHE_DIR=$PWD/build/cache FLASHCORE_COMMIT=$(cat .commit)
timeout 120 python3 -m pytest -q -x --tb=short -p no:cacheprovider tests/flashcore_cutlass/test_op_gpu.py > $OUT/op_gpu_x.log 2>&1
grep -v "^\s*$" $OUT/op_gpu_x.log | tail -45 | cut -c1-300
timeout 120 python3 -m pytest -q --tb=line -rf -p no:cacheprovider tests/flashcore_cutlass/test_op_gpu.py 2>&1 | tail -12 | cut -c1-400
timeout 150 python3 benchmarks/bench_head_dims.py --dims 32,40,64 --seqlens 1024,4096 --no-models --json $OUT/bench_head_dims.json 2>$OUT/head_dims.err | tail -16
tail -3 $OUT/head_dims.err
