#!/usr/bin/env bash
# What the row max costs the PV-sum kernels (max_free.patch, a probe, not a safe kernel): on unmasked tiles the
# softmax takes no row max, no quad shuffles, no vote and no correction; the weights refer to the row's kept max as
# they come (an upper bound on growth is not enforced: random inputs grow it by a few log2 units at most). What a
# safe version would add is in: an OR over the packed weights (any weight >= 2, bit 14 of a bf16) and a warp vote,
# made observable. No exact LSE on those tiles (its top-weight rounding term needs the max). A = the tree (built in
# build/cache by device_run.sh, KEEP_BUILD or this call), B = the patch, its tiles in the script's own cache, each
# run once at a cell against SDPA in a watched child, then the same cells; SDPA in each phase's rounds.
# max_free_sum.patch (PATCH=...): the same with the exact weights' sum on those tiles (one FADD a score), taken into
# row_round as a masked tile's, so the LSE stays exact, and the check a safe version needs on it (every thread-row's
# sum below 2^15: no weight overflows, fp16's P included), made observable; TESTS=1 then runs the B tiles' reference,
# strided and fp16-range tests (not the growing-max ones: this probe has no path for a tile that fails the check).
#   OUT=... [ROUNDS=3] [PATCH=benchmarks/experiments/sm90/max_free_sum.patch TESTS=1] bash benchmarks/experiments/sm90/max_free.sh
PATCH=${PATCH:-benchmarks/experiments/sm90/max_free.patch}
TAG=$(basename "$PATCH" .patch | tr -d _)
. "$(dirname "$0")/ab_steps.sh"
PP=m128_n128_s2_sch2_p1_kv1_lr1; OV=m128_n128_s2_sch1_p1_kv1_lr1; W=m192_n128_s2_sch1_p1_kv1_lr1
V=(fc_sm90_bf16_d128_full_$PP fc_sm90_bf16_d128_full_$OV fc_sm90_bf16_d64_full_$W fc_sm90_bf16_d128_causal_$PP)
CELLS=(--cell "$(ab_cell 128 16384 full $PP)" --cell "$(ab_cell 64 16384 full $W)"
       --cell "$(ab_cell 128 2048 full $PP)" --cell "$(ab_cell 128 1024 full $OV)"
       --cell "$(ab_cell 64 2048 full $W)" --cell "$(ab_cell 128 4096 causal $PP)")
(export FLASHCORE_CACHE_DIR=$PWD/build/cache; TAG=${TAG}_A; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
git apply "$PATCH" || exit 1
ab_build 150 2 "${V[@]}"
ab_probe 90 "${V[0]}@1,16,16384" "${V[1]}@16,16,1024" "${V[2]}@8,32,2048" "${V[3]}@4,16,4096"
# The probe's "ok" says the call finished; here its error against SDPA must be a bf16 output's too (the first
# run of this script had every non-causal output NaN: the first tile walked took the max-free path).
awk '/ok max/ { e = $6; sub(",", "", e); if (e == "nan" || e + 0 > 0.05) bad = 1 } END { exit bad }' "$OUT/${TAG}_probe.txt" \
  || { echo "a B tile's output is off: no A/B"; git apply -R "$PATCH"; exit 1; }
[ -n "${TESTS:-}" ] && ab_tests 120 4 -k "(matches_reference or strided or fp16_range) and ($(printf '%s or ' "${V[@]}") none)" \
  tests/flashcore_cutlass/test_kernels_gpu.py
(TAG=${TAG}_B; ab_run 150 "${ROUNDS:-3}" 12 "${CELLS[@]}")
git apply -R "$PATCH"
