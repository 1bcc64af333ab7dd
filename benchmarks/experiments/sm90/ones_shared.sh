#!/usr/bin/env bash
# The row sums by the PV GEMM on the D64 64-row two- and three-CTA tiles (ones_shared.patch: one ones atom after
# the V ring serves every stage, the PV descriptor's leading byte offset being the stage's distance to it, where an
# atom a stage does not fit): an A/B at the grid's short D64 cells. A = the tree, run on the carried build of
# device_run.sh (KEEP_BUILD=1; in build/cache); B = the tree with the patch, its changed tiles built in the script's
# own cache, run once each in a watched child, their GPU tests, then the same cells. SDPA runs in each phase's
# rounds (the control); the D64 causal 1k three-CTA s2 tile (ones a stage already, unchanged) is a second control.
# After device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... [ROUNDS=4] bash benchmarks/experiments/sm90/ones_shared.sh
TAG=ones
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/ones_shared.patch
C2F=m64_n128_s2_sch1_p1_kv1_c2_lr1; C2C=m64_n128_s2_sch1_p1_kv1_c2; C3S3=m64_n64_s3_sch1_p1_kv1_c3_lr1
C3S2=m64_n64_s2_sch1_p1_kv1_c3_lr1
V=(fc_sm90_bf16_d64_full_$C2F fc_sm90_bf16_d64_causal_$C2C fc_sm90_bf16_d64_causal_$C3S3)
CELLS=(--cell "$(ab_cell 64 512 full $C2F)" --cell "$(ab_cell 64 512 causal $C3S3 $C2C)"
       --cell "$(ab_cell 64 1024 causal $C3S2 $C2C)")
(export FLASHCORE_CACHE_DIR=$PWD/build/cache; TAG=${TAG}_A; ab_run 75 4 12 "${CELLS[@]}")
git apply "$PATCH" || exit 1
ab_build 90 2 "${V[@]}" fc_sm90_bf16_d64_causal_$C3S2
ab_probe 45 "${V[0]}@32,32,512" "${V[1]}@32,32,512" "${V[2]}@32,32,512" "${V[1]}@3,5,1000"
ab_tests 75 4 -x -k "bf16_d64_full_$C2F or bf16_d64_causal_$C2C or bf16_d64_causal_$C3S3" \
  tests/flashcore_cutlass/test_kernels_gpu.py
(TAG=${TAG}_B; ab_run 75 4 12 "${CELLS[@]}")
git apply -R "$PATCH"
