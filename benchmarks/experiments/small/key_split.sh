#!/usr/bin/env bash
# Key-split warpgroups (sm90 axis key_split_wgs, key_split.cuh) against the few-CTA winners: build
# the variants below, run the kernel and feature GPU tests over them, then kernel times (CUPTI) on
# the issue-8 shapes and a few long-key ones; with TUNE=1 also a tune of the small and long-key
# suites over them and bench_small from that table. Logs under $OUT.
#   bash benchmarks/experiments/small/key_split.sh
# History: first run at cad985e (2026-11-26 21:48-) with one ring slot per warpgroup, slower
# everywhere and reverted; with 1.5-2 slots per warpgroup 8-17 % faster (2026-11-27 08:57-, calls
# 17-20); brought back with stages a multiple of the warpgroups (2026-11-27 10:25-).
set -uo pipefail
cd "$(dirname "$0")/../../.."
VARIANTS=${VARIANTS:-"
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv2
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1_ks2
fc_sm90_fp16_d64_full_m64_n128_s4_sch1_p0_kv1_ks2
fc_sm90_fp16_d64_full_m64_n64_s4_sch1_p0_kv1_ks2
fc_sm90_fp16_d64_full_m64_n64_s4_sch1_p0_kv1_ks4
fc_sm90_fp16_d64_causal_m64_n128_s4_sch1_p0_kv1_ks2
fc_sm90_bf16_d64_full_m64_n128_s4_sch1_p0_kv1_ks2
fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv1
fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv1_ks2
fc_sm90_bf16_d128_full_m64_n64_s4_sch1_p0_kv1_ks2
fc_sm90_bf16_d128_causal_m64_n64_s4_sch0_p0_kv1_ks2
"}
only=""
for v in $VARIANTS; do only="$only --only $v"; done
OUT=${OUT:-/tmp/flashcore_out}
LOG=/tmp/key_split_logs
rm -rf "$LOG" && mkdir -p "$LOG" "$OUT"
export BUILD_ARGS="$only" TEST_ARGS="tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py -x"
OUT=$LOG/run bash benchmarks/device_run.sh build test > "$LOG/device_run.txt" 2>&1
tail -40 "$LOG/device_run.txt"
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache FLASHCORE_COMMIT=$(cat .commit 2>/dev/null || echo unknown)
echo "=== kernel times fp16 D64"
python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 --shape 1,8,512,64 --shape 1,8,1024,64 --shape 1,1,2048,64 \
  --shape 4,16,512,64 --shape 1,8,128,4096,64 --json "$LOG/kernel_times_fp16.json" 2>&1 | tee "$LOG/kernel_times_fp16.txt"
echo "=== kernel times bf16 D128"
python3 benchmarks/experiments/small/kernel_times.py --dtype bf16 --shape 1,32,512,128 --shape 2,16,1024,128 \
  --shape 1,8,1024,128 --shape 1,8,128,4096,128 --json "$LOG/kernel_times_bf16.json" 2>&1 | tee "$LOG/kernel_times_bf16.txt"
if [ "${TUNE:-0}" = 1 ]; then
  echo "=== tune small + long keys"
  python3 -m flashcore_cutlass tune -q --suite small --careful 4 --warmup-ms 300 > "$LOG/tune_small.txt" 2>&1
  python3 -m flashcore_cutlass tune -q --suite long-keys --careful 4 --warmup-ms 300 > "$LOG/tune_long.txt" 2>&1
  python3 -m flashcore_cutlass table --winners > "$LOG/table.txt" 2>&1
  python3 -m flashcore_cutlass table --json > "$LOG/table.json" 2>/dev/null
  echo "=== bench_small"
  python3 benchmarks/bench_small.py --dtype fp16 --shape 1,8,512,64 --shape 1,8,1024,64 --shape 4,16,512,64 \
    --shape 1,8,64,8192,64 --shape 1,8,128,4096,64 --json "$LOG/bench_small.json" 2>"$LOG/small.err" | tee "$LOG/small.txt"
fi
tar czf "$OUT/key_split_logs.tgz" -C "$LOG" . && cp "$LOG"/*.json "$OUT/" 2>/dev/null
