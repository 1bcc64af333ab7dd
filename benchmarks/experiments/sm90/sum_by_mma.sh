#!/usr/bin/env bash
# Row sums by the tensor cores (sum_by_mma.patch: P x ones, an N = 8 wgmma in the PV GEMM's group, on the
# overlapped tiles) instead of the softmax's per-score FADDs and the lazy softmax's rounding term: an A/B at the
# power cap. A = the tree, B = the tree with the patch (SDPA in each phase's runs is the control). Each phase:
# cap_bound.py at the 16k cells on the named tiles (the patch changes every sm90 hash, so dispatch would fall back
# to the heuristic) and two_ctas_ab.py at two short cells, each against SDPA in the same run; B first runs each
# tile once in a watched child and its GPU tests. After device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... [ROUNDS=3] bash benchmarks/experiments/sm90/sum_by_mma.sh
TAG=summma
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/sum_by_mma.patch
T64=m192_n128_s2_sch1_p1_kv1_lr1; T128=m128_n128_s2_sch2_p1_kv1_lr1; T256=m128_n64_s2_sch1_p1_kv1_lr1
T64S=m64_n128_s2_sch1_p1_kv1_c2_lr1
V=(fc_sm90_bf16_d64_full_$T64 fc_sm90_bf16_d128_full_$T128 fc_sm90_bf16_d256_full_$T256 fc_sm90_bf16_d64_full_$T64S)
CAP=(--rounds "${ROUNDS:-3}" --gemm-n 12288 --variant "64=${V[0]}" --variant "128=${V[1]}" --variant "256=${V[2]}")
CELLS=(--cell "$(ab_cell 64 512 full $T64S)" --cell "$(ab_cell 128 1024 full $T128)")
ab_cap_phase A
git apply "$PATCH" || exit 1
ab_build 200 2 "${V[@]}"
ab_probe 100 "${V[0]}@1,32,16384" "${V[1]}@1,16,16384" "${V[2]}@1,8,16384" "${V[3]}@32,32,512"
ab_tests 150 3 -x -k "d64_full_$T64 or d128_full_$T128 or d256_full_$T256 or d64_full_$T64S" \
  tests/flashcore_cutlass/test_kernels_gpu.py
ab_cap_phase B
git apply -R "$PATCH"
