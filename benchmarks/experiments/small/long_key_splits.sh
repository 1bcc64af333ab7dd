#!/usr/bin/env bash
# Short queries on long keys: split-KV clusters of 2 (the shipped winners), 4 and 8 CTAs per
# 64-row query tile, kernel time (CUPTI) and graph time per call on the tuner's long-key shapes
# (fp16 D64, bf16 D128) and the seed shape. Builds its variants; writes $OUT/long_key_splits.tgz.
set -u
cd "$(dirname "$0")/../../.."
D=/tmp/long_key_splits; rm -rf $D; mkdir -p $D
only=""
for kv in 2 4 8; do
  only="$only --only fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv$kv --only fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv$kv"
done
OUT=$D/run BUILD_ARGS="$only" bash benchmarks/device_run.sh build > $D/build.txt 2>&1; tail -3 $D/build.txt
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 --shape 1,8,64,8192,64 --shape 1,8,128,4096,64 \
  --shape 1,32,64,4096,64 --shape 4,8,64,2048,64 --shape 1,8,512,64 --shape 1,8,1024,64 \
  --json $D/kernel_times_fp16.json 2>&1 | grep -v -i warn | tee $D/kernel_times_fp16.txt
python3 benchmarks/experiments/small/kernel_times.py --dtype bf16 --shape 1,8,64,8192,128 --shape 1,8,128,4096,128 \
  --shape 1,32,64,4096,128 --shape 1,32,64,2048,128 \
  --json $D/kernel_times_bf16.json 2>&1 | grep -v -i warn | tee $D/kernel_times_bf16.txt
tar czf ${OUT:-/tmp}/long_key_splits.tgz -C $D .
