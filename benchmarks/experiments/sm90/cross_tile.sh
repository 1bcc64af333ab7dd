#!/usr/bin/env bash
# Experiment (benchmarks/NOTES.md, session of 2026-11-26 09:11-): the cross-tile schedules (sch3/sch4)
# against their within-tile twins (sch1/sch2) on the bf16 D64/D128 grid, same run, with SDPA.
# Runs at commits e1810bfbc7b4 / d5fac7496b93 only: the schedules lost and were reverted (NOTES.md).
# NEW: the cross-tile variants under test; OLD: their twins (and the grid's other default tiles).
set -u
NEW=${NEW:-"fc_sm90_bf16_d64_full_m192_n128_s2_sch3_p1_kv1 fc_sm90_bf16_d64_full_m128_n128_s2_sch4_p1_kv1
 fc_sm90_bf16_d64_causal_m128_n128_s2_sch3_p1_kv1 fc_sm90_bf16_d64_causal_m128_n128_s3_sch3_p1_kv1
 fc_sm90_bf16_d64_full_m128_n128_s3_sch4_p1_kv1 fc_sm90_bf16_d64_causal_m128_n128_s2_sch4_p1_kv1
 fc_sm90_bf16_d128_full_m128_n128_s2_sch4_p1_kv1 fc_sm90_bf16_d128_full_m128_n128_s2_sch3_p1_kv1
 fc_sm90_bf16_d128_causal_m128_n128_s2_sch3_p1_kv1 fc_sm90_bf16_d128_causal_m128_n128_s2_sch4_p1_kv1"}
ARGS=${OLD:-"--only fc_sm90_bf16_d64_*_p1_* --only fc_sm90_bf16_d128_*_p1_*"}
for n in $NEW; do ARGS="$ARGS --only $n"; done
BUILD_ARGS="$ARGS" TEST_ARGS="-q -p no:cacheprovider tests/flashcore_cutlass/test_api_gqa_gpu.py tests/flashcore_cutlass/test_varlen_gpu.py -k persistent" \
  TUNE_ARGS="--suite grid --dtype bf16 --head-dim 64 --head-dim 128" BENCH_ARGS="--grid --d 64 --d 128" \
  bash benchmarks/device_run.sh ${STAGES:-build test tune bench}
