#!/usr/bin/env bash
# The seed's shape (1, 8, 512, 64) fp16 on 64-row tiles whose key range is split over 2-4 CTAs that combine
# through global memory (`_g1`), against the shipped one-CTA tile and the cluster split: 128-256 CTAs instead
# of 64, so more of the 132 SMs share the key loop (target_bounds.py: the seed's kernel is ~2.8 us longer than a
# one-tile call). Builds the variants below, runs their kernel tests, then kernel_times.py. Logs under $OUT.
#   bash benchmarks/experiments/small/seed_splits.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
VARIANTS=${VARIANTS:-"
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv2
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv2_g1
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv4_g1
fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv8_g1
fc_sm90_fp16_d64_full_m64_n64_s2_sch1_p0_kv2_g1
fc_sm90_fp16_d64_full_m64_n64_s2_sch1_p0_kv4_g1
"}
only=""
for v in $VARIANTS; do only="$only --only $v"; done
OUT=${OUT:-/tmp/flashcore_out}
LOG=/tmp/seed_splits_logs
rm -rf "$LOG" && mkdir -p "$LOG" "$OUT"
export BUILD_ARGS="$only" TEST_ARGS="tests/flashcore_cutlass/test_kernels_gpu.py -x -q -k _g1"
OUT=$LOG/run DEADLINE_S=${DEADLINE_S:-300} bash benchmarks/device_run.sh build test > "$LOG/device_run.txt" 2>&1
tail -15 "$LOG/device_run.txt"
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache FLASHCORE_COMMIT=$(cat .commit 2>/dev/null || echo unknown)
echo "=== kernel times fp16 D64"
timeout 200 python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 --shape 1,1,64,64 --shape 1,8,512,64 \
  --shape 1,8,1024,64 --json "$LOG/kernel_times_fp16.json" 2>&1 | tee "$LOG/kernel_times_fp16.txt"
cp "$LOG"/*.json "$LOG"/*.txt "$OUT/" 2>/dev/null
tar czf "$OUT/seed_splits_logs.tgz" -C "$LOG" .
