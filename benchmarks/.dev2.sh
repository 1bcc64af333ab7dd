#!/usr/bin/env bash
# call 2: build defaults; tune sweep of untuned D64 non-causal keys; GPU test files
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
bash benchmarks/device_run.sh build >/tmp/flashcore_dev2.txt 2>&1
tail -4 /tmp/flashcore_dev2.txt
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests:/tmp/site_extra FLASHCORE_CACHE_DIR=$PWD/build/cache FLASHCORE_COMMIT=$(cat .commit)
S=""
for s in 64,12,197,197 32,12,512,512 2,10,4096,4096 2,20,1024,1024 16,64,1024,1024 8,16,1024,1024 1,16,2048,2048 4,32,256,256 2,16,512,512 16,16,512,512 1,32,4096,4096; do S="$S --shape $s"; done
timeout 150 python3 -m flashcore_cutlass tune --dtype bf16 --head-dim 64 --no-causal $S --careful 3 > $OUT/tune_d64.log 2>&1; echo "tune rc $?"
python3 -m flashcore_cutlass table --json > $OUT/table_d64.json 2>/dev/null
grep -v "^\s*$" $OUT/tune_d64.log | tail -30
cd tests/flashcore_cutlass
for f in test_op_gpu.py test_patch_gpu.py test_op.py test_patch.py test_api_gpu.py test_api_gqa_gpu.py test_features_gpu.py test_varlen_gpu.py test_pack_gqa_gpu.py test_kernels_gpu.py; do
  timeout 240 python3 -m pytest -q -p no:cacheprovider $f > $OUT/test_$f.log 2>&1; echo "$f rc $? $(tail -1 $OUT/test_$f.log)"
done
