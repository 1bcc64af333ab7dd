#!/usr/bin/env bash
# The free softmax made safe (max_free_safe.patch): the PV-sum kernels' unmasked tiles take no row max once every
# row of the warp has a centre (its max + 8, log2 units); the packed weights are checked (a weight of 2 or more:
# the tile is redone the exact way, its scores rebuilt from the weights or, where one overflowed, recomputed from
# Q and K in shared memory, K's slot held until the check). FC_FREE_EXACT_LSE (1 in the patch) adds the exact
# weights' sum on free tiles (one FADD a score) for an exact LSE; 0 is the kernel a call without the LSE would run.
# A = the tree (device_run.sh's build), B1 = the patch with the exact LSE: every GPU kernel test of its tiles
# (the growing-max ramps redo tiles both ways); B0 = without: run once at the cells against SDPA (gated on the
# error), its growing-max tests (informational: its LSE is not exact), then the A/B cells; SDPA in each phase.
# WIDE=1: nine cells over the grid's D64/D128 tiles (5 rounds), B0 against A only.
#   OUT=... [ROUNDS=3] [WIDE=1] bash benchmarks/experiments/sm90/max_free_safe.sh
TAG=maxfreesafe
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/max_free_safe.patch
PP=m128_n128_s2_sch2_p1_kv1_lr1; OV=m128_n128_s2_sch1_p1_kv1_lr1; W=m192_n128_s2_sch1_p1_kv1_lr1
V=(fc_sm90_bf16_d128_full_$PP fc_sm90_bf16_d128_full_$OV fc_sm90_bf16_d64_full_$W fc_sm90_bf16_d128_causal_$PP)
CELLS=(--cell "$(ab_cell 128 16384 full $PP)" --cell "$(ab_cell 64 16384 full $W)"
       --cell "$(ab_cell 128 2048 full $PP)" --cell "$(ab_cell 128 1024 full $OV)"
       --cell "$(ab_cell 64 2048 full $W)" --cell "$(ab_cell 128 4096 causal $PP)")
if [ -n "${WIDE:-}" ]; then  # the second call: more cells (the grid's winners' tiles), B0 only, 5 rounds by default
  WK=m192_n128_s2_sch1_p1_kv1_lr1_wk1
  V+=(fc_sm90_bf16_d64_causal_$WK)
  CELLS=(--cell "$(ab_cell 128 512 full $PP)" --cell "$(ab_cell 128 1024 full $OV)" --cell "$(ab_cell 128 4096 full $PP)"
         --cell "$(ab_cell 128 16384 full $PP)" --cell "$(ab_cell 128 1024 causal $PP)" --cell "$(ab_cell 128 4096 causal $PP)"
         --cell "$(ab_cell 64 1024 full $W)" --cell "$(ab_cell 64 4096 full $W)" --cell "$(ab_cell 64 4096 causal $WK)")
  ROUNDS=${ROUNDS:-5}
fi
(export FLASHCORE_CACHE_DIR=$PWD/build/cache; TAG=${TAG}_A; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
git apply "$PATCH" || exit 1
SOFTMAX=templates/include/flashcore/sm90/softmax.cuh
unpatch() { sed -i 's/^#define FC_FREE_EXACT_LSE 0$/#define FC_FREE_EXACT_LSE 1/' $SOFTMAX; git apply -R "$PATCH"; }
K="$(printf '%s or ' "${V[@]}") none"
[ -z "${WIDE:-}" ] && (export FLASHCORE_CACHE_DIR=/tmp/fc_${TAG}_exact; TAG=${TAG}_B1
 ab_build 150 2 "${V[@]}"
 ab_tests 130 6 -k "$K" tests/flashcore_cutlass/test_kernels_gpu.py)
sed -i 's/^#define FC_FREE_EXACT_LSE 1$/#define FC_FREE_EXACT_LSE 0/' $SOFTMAX
grep -q '^#define FC_FREE_EXACT_LSE 0$' $SOFTMAX || { echo "the switch did not flip"; unpatch; exit 1; }
ab_build 150 2 "${V[@]}"
ab_probe 90 "${V[0]}@1,16,16384" "${V[1]}@16,16,1024" "${V[2]}@8,32,2048" "${V[3]}@4,16,4096" ${V[4]:+"${V[4]}@4,32,4096"}
awk '/ok max/ { e = $6; sub(",", "", e); if (e == "nan" || e + 0 > 0.05) bad = 1 } END { exit bad }' "$OUT/${TAG}_probe.txt" \
  || { echo "a B0 tile's output is off: no A/B"; unpatch; exit 1; }
[ -z "${WIDE:-}" ] && (TAG=${TAG}_B0ramp; ab_tests 60 4 -k "growing_row_max and ($K)" tests/flashcore_cutlass/test_kernels_gpu.py)
(TAG=${TAG}_B0; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
unpatch
