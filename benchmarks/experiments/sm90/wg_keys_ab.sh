#!/usr/bin/env bash
# Per-warpgroup key ranges (wg_keys, `_wk1`) against the tiles they would replace at the grid's causal
# cells (benchmarks/NOTES.md, 2026-11-29 12:55-): build the tiles, their GPU tests (-k wk1), then the
# interleaved A/B of two_ctas_ab.py (one call at a time as the grid times, and queued), SDPA in the same rounds.
#   OUT=... bash benchmarks/experiments/sm90/wg_keys_ab.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
C=s2_sch1_p1_kv1
PP=s2_sch2_p1_kv1
V=""
for t in d256_causal_m128_n64_${C}_lr1 d256_causal_m128_n64_${C}_lr1_wk1 \
         d64_causal_m192_n128_${C}_lr1 d64_causal_m192_n128_${C}_lr1_wk1 d64_causal_m128_n64_${PP}_lr1_wk1 \
         d64_causal_m128_n64_${C}_lr1_wk1 d64_causal_m192_n64_${C}_lr1_wk1 d64_causal_m64_n64_s3_sch1_p1_kv1_c3_lr1 \
         d64_causal_m64_n64_${C}_c3_lr1 d128_causal_m128_n128_${C}_lr1 d128_causal_m128_n128_${PP}_lr1 \
         d128_causal_m128_n64_${PP}_lr1_wk1 d128_causal_m128_n64_${C}_lr1_wk1; do
  V="$V --only fc_sm90_bf16_$t"
done
export BUILD_ARGS="$V" DEADLINE_S=${DEADLINE_S:-240}
export TEST_ARGS=${TEST_ARGS:-"-x -k wk1 tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py tests/flashcore_cutlass/test_varlen_gpu.py"}
bash benchmarks/device_run.sh build test 2>&1 | grep -v "^building" | tail -20
cp /tmp/flashcore_logs/tests.log "$OUT/wk_tests.log" 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
# Does every _wk1 tile finish sustained calls at the grid's short causal cells (call 2's A/B stopped at D64 S=1024)?
P=""
for t in d64_causal_m128_n64_${PP}_lr1_wk1 d64_causal_m128_n64_${C}_lr1_wk1 d64_causal_m192_n64_${C}_lr1_wk1 \
         d64_causal_m192_n128_${C}_lr1_wk1; do
  P="$P fc_sm90_bf16_$t@32,32,512 fc_sm90_bf16_$t@16,32,1024"
done
for t in d128_causal_m128_n64_${PP}_lr1_wk1 d128_causal_m128_n64_${C}_lr1_wk1; do
  P="$P fc_sm90_bf16_$t@32,16,512 fc_sm90_bf16_$t@16,16,1024"
done
P="$P fc_sm90_bf16_d256_causal_m128_n64_${C}_lr1_wk1@32,8,512 fc_sm90_bf16_d256_causal_m128_n64_${C}_lr1_wk1@16,8,1024"
timeout "${PROBE_S:-150}" python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 20 --reps 200 $P 2>&1 | tee "$OUT/wk_probe.txt"
timeout "${AB_S:-240}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-3}" --json "$OUT/wk_ab.json" \
  --cell 256,512,causal,m128_n64_${C}_lr1,m128_n64_${C}_lr1_wk1 \
  --cell 256,1024,causal,m128_n64_${C}_lr1,m128_n64_${C}_lr1_wk1 \
  --cell 256,2048,causal,m128_n64_${C}_lr1,m128_n64_${C}_lr1_wk1 \
  --cell 256,4096,causal,m128_n64_${C}_lr1,m128_n64_${C}_lr1_wk1 \
  --cell 64,4096,causal,m192_n128_${C}_lr1,m192_n128_${C}_lr1_wk1 \
  --cell 128,512,causal,m128_n128_${PP}_lr1,m128_n64_${PP}_lr1_wk1,m128_n64_${C}_lr1_wk1 \
  --cell 128,1024,causal,m128_n128_${C}_lr1,m128_n64_${PP}_lr1_wk1,m128_n64_${C}_lr1_wk1 \
  --cell 64,8192,causal,m192_n128_${C}_lr1,m192_n128_${C}_lr1_wk1 \
  --cell 256,8192,causal,m128_n64_${C}_lr1,m128_n64_${C}_lr1_wk1 2>&1 | tail -45
