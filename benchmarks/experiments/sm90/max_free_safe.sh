#!/usr/bin/env bash
# The free softmax (max_free_safe.patch; benchmarks/NOTES.md, 2026-11-30 05:44-): the lazy PV-sum kernels' unmasked
# tiles take no row max where the caller drops the LSE (Params.lse_unused) once every row of the warp has a centre
# (its max + 8, log2 units); the packed weights are checked after the PV wait (a weight of 2 or more: the tile is
# redone the exact way, its scores rebuilt from the weights or, where one overflowed, recomputed from Q and K in
# shared memory, K's slot held until the check). A = the tree (device_run.sh's build), B = the patch: its tiles built in
# the script's own cache, every GPU kernel test of them (test_free_softmax_without_lse runs the free path on random
# inputs, growing-max ramps and scores past fp16's range; the others the exact path), each run once at a cell against
# SDPA (gated on the error), then the A/B cells (timed with lse_unused, as attention() runs by default); SDPA in
# each phase's rounds. The earlier probes (no redo; the exact sum's FADD) are in git history (2ecf204, 482829e).
#   OUT=... [ROUNDS=3] [WIDE=1] bash benchmarks/experiments/sm90/max_free_safe.sh
TAG=maxfreesafe
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/max_free_safe.patch
PP=m128_n128_s2_sch2_p1_kv1_lr1; OV=m128_n128_s2_sch1_p1_kv1_lr1; W=m192_n128_s2_sch1_p1_kv1_lr1
V=(fc_sm90_bf16_d128_full_$PP fc_sm90_bf16_d128_full_$OV fc_sm90_bf16_d64_full_$W fc_sm90_bf16_d128_causal_$PP)
CELLS=(--cell "$(ab_cell 128 16384 full $PP)" --cell "$(ab_cell 64 16384 full $W)"
       --cell "$(ab_cell 128 2048 full $PP)" --cell "$(ab_cell 128 1024 full $OV)"
       --cell "$(ab_cell 64 2048 full $W)" --cell "$(ab_cell 128 4096 causal $PP)")
if [ -n "${WIDE:-}" ]; then  # nine cells over the grid's D64/D128 tiles, 5 rounds by default
  WK=m192_n128_s2_sch1_p1_kv1_lr1_wk1
  V+=(fc_sm90_bf16_d64_causal_$WK)
  CELLS=(--cell "$(ab_cell 128 512 full $PP)" --cell "$(ab_cell 128 1024 full $OV)" --cell "$(ab_cell 128 4096 full $PP)"
         --cell "$(ab_cell 128 16384 full $PP)" --cell "$(ab_cell 128 1024 causal $PP)" --cell "$(ab_cell 128 4096 causal $PP)"
         --cell "$(ab_cell 64 1024 full $W)" --cell "$(ab_cell 64 4096 full $W)" --cell "$(ab_cell 64 4096 causal $WK)")
  ROUNDS=${ROUNDS:-5}
fi
(export FLASHCORE_CACHE_DIR=$PWD/build/cache; TAG=${TAG}_A; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
git apply "$PATCH" || exit 1
ab_build 150 2 "${V[@]}"
ab_tests 150 6 -k "$(printf '%s or ' "${V[@]}") none" tests/flashcore_cutlass/test_kernels_gpu.py
ab_probe 90 "${V[0]}@1,16,16384" "${V[1]}@16,16,1024" "${V[2]}@8,32,2048" "${V[3]}@4,16,4096" ${V[4]:+"${V[4]}@4,32,4096"}
awk '/ok max/ { e = $6; sub(",", "", e); if (e == "nan" || e + 0 > 0.05) bad = 1 } END { exit bad }' "$OUT/${TAG}_probe.txt" \
  || { echo "a B tile's output is off: no A/B"; git apply -R "$PATCH"; exit 1; }
(TAG=${TAG}_B; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
git apply -R "$PATCH"
