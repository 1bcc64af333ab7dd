#!/usr/bin/env bash
# The exact LSE of the PV-sum kernels, cheaper on masked tiles (masked_round.patch): the softmax subtracts the exact
# weights' sum there (one FADD a score) and the mainloop adds what that tile's PV GEMM added to the row's GEMM sum,
# in place of rounding each weight in the softmax (three instructions a score). The patch also folds
# sum_pv_wgmma.cuh's four written-out specialisations into one macro a shape (the same SASS, CPU-checked: any sm90
# header edit re-keys every row, so it rides with this change) and carries the shipped table with the rows of the
# kernels it leaves byte-identical moved to its hashes by rekey_shipped.py (benchmarks/NOTES.md, 2026-11-30).
# An A/B at short causal cells, where masked tiles are 12-40 % of the work, and at two cells of the 192-row D64
# tiles: A = the tree on the carried build of device_run.sh (KEEP_BUILD=1, in build/cache), B = the tree with the
# patch, its tiles built in the script's own cache, their GPU tests (the LSE cases included), then the same cells;
# SDPA in each phase's rounds. After device_run.sh installed the package.
#   OUT=... [ROUNDS=5] bash benchmarks/experiments/sm90/masked_round.sh
TAG=mround
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/masked_round.patch
T128=m128_n128_s2_sch2_p1_kv1_lr1; T64=m64_n64_s2_sch1_p1_kv1_c3_lr1
T64W=m192_n128_s2_sch1_p1_kv1_lr1_wk1; T64F=m192_n128_s2_sch1_p1_kv1_lr1  # 3 WGs, which spill a little: ptxas within 4-8 B of main
V=(fc_sm90_bf16_d128_causal_$T128 fc_sm90_bf16_d64_causal_$T64 fc_sm90_bf16_d64_causal_$T64W fc_sm90_bf16_d64_full_$T64F)
CELLS=(--cell "$(ab_cell 128 512 causal $T128)" --cell "$(ab_cell 128 1024 causal $T128)"
       --cell "$(ab_cell 128 2048 causal $T128)" --cell "$(ab_cell 64 1024 causal $T64)"
       --cell "$(ab_cell 64 4096 causal $T64W)" --cell "$(ab_cell 64 2048 full $T64F)")
(export FLASHCORE_CACHE_DIR=$PWD/build/cache; TAG=${TAG}_A; ab_run 180 5 10 "${CELLS[@]}")
git apply "$PATCH" || exit 1
ab_build 150 2 "${V[@]}"
ab_tests 150 4 -x -k "bf16_d128_causal_$T128 or bf16_d64_causal_$T64 or bf16_d64_causal_$T64W or bf16_d64_full_$T64F" \
  tests/flashcore_cutlass/test_kernels_gpu.py
(TAG=${TAG}_B; ab_run 180 5 10 "${CELLS[@]}")
git apply -R "$PATCH"
