#!/usr/bin/env bash
# Does holding K's slot until the free tile's check cost the short cells? max_free_safe.patch (H: the slot held,
# so that an overflowed tile can recompute its scores from K in shared memory) against max_free_early.patch (E: the
# same with K released where main releases it; its overflow redo would read a refilled slot, so E is a timing
# experiment only, on random inputs that never overflow). Both without the exact LSE (FC_FREE_EXACT_LSE 0), SDPA in
# each phase's rounds; no A phase (both against SDPA). After device_run.sh installed the package.
#   OUT=... [ROUNDS=3] bash benchmarks/experiments/sm90/max_free_early.sh
TAG=maxfreeearly
. "$(dirname "$0")/ab_steps.sh"
SOFTMAX=templates/include/flashcore/sm90/softmax.cuh
PP=m128_n128_s2_sch2_p1_kv1_lr1; OV=m128_n128_s2_sch1_p1_kv1_lr1; W=m192_n128_s2_sch1_p1_kv1_lr1; WK=${W}_wk1
V=(fc_sm90_bf16_d128_full_$PP fc_sm90_bf16_d128_full_$OV fc_sm90_bf16_d64_full_$W fc_sm90_bf16_d64_causal_$WK)
CELLS=(--cell "$(ab_cell 128 1024 full $OV)" --cell "$(ab_cell 128 2048 full $PP)" --cell "$(ab_cell 64 1024 full $W)"
       --cell "$(ab_cell 64 4096 causal $WK)" --cell "$(ab_cell 128 16384 full $PP)")
for phase in safe early; do
  PATCH=benchmarks/experiments/sm90/max_free_$phase.patch
  git apply "$PATCH" || exit 1
  sed -i 's/^#define FC_FREE_EXACT_LSE 1$/#define FC_FREE_EXACT_LSE 0/' $SOFTMAX
  (export FLASHCORE_CACHE_DIR=/tmp/fc_${TAG}_$phase; TAG=${TAG}_$phase
   ab_build 90 2 "${V[@]}" && ab_run 75 "${ROUNDS:-3}" 7 "${CELLS[@]}")
  sed -i 's/^#define FC_FREE_EXACT_LSE 0$/#define FC_FREE_EXACT_LSE 1/' $SOFTMAX
  git apply -R "$PATCH" || exit 1
done
