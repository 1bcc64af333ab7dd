#!/usr/bin/env bash
# Row sums by the PV GEMM (sum_by_pv.patch: the overlapped tiles' PV wgmma at N = Dv + 8 over V's descriptors, each V
# stage followed by a swizzle atom of ones, so the accumulator's last 8 columns are the rows' sums of P as the GEMM
# read it) instead of the softmax's per-score FADDs and the lazy softmax's rounding term: an A/B at the power cap.
# A = the tree, B = the tree with the patch (SDPA in each phase's runs is the control). Each phase: cap_bound.py at
# the 16k cells on the named tiles (the patch changes every sm90 hash, so dispatch would fall back to the heuristic;
# D256 keeps its SASS: the control) and two_ctas_ab.py at four shorter cells (two causal), each against SDPA in the same run; B
# first runs each tile once in a watched child and its GPU tests. After device_run.sh installed the package.
#   OUT=... [ROUNDS=3] bash benchmarks/experiments/sm90/sum_by_pv.sh
TAG=sumpv CAP_AB_S=200
. "$(dirname "$0")/ab_steps.sh"
PATCH=benchmarks/experiments/sm90/sum_by_pv.patch
T64=m192_n128_s2_sch1_p1_kv1_lr1; T128=m128_n128_s2_sch2_p1_kv1_lr1; T256=m128_n64_s2_sch1_p1_kv1_lr1
T128C=m128_n128_s2_sch1_p1_kv1_lr1; T64C=m192_n128_s2_sch1_p1_kv1_lr1_wk1
V=(fc_sm90_bf16_d64_full_$T64 fc_sm90_bf16_d128_full_$T128 fc_sm90_bf16_d256_full_$T256 fc_sm90_bf16_d128_causal_$T128C
   fc_sm90_bf16_d64_causal_$T64C)
CAP=(--rounds "${ROUNDS:-3}" --gemm-n 12288 --variant "64=${V[0]}" --variant "128=${V[1]}" --variant "256=${V[2]}")
CELLS=(--cell "$(ab_cell 64 1024 full $T64)" --cell "$(ab_cell 128 1024 full $T128)" --cell "$(ab_cell 128 2048 causal $T128C)"
       --cell "$(ab_cell 64 4096 causal $T64C)")
ab_cap_phase A
git apply "$PATCH" || exit 1
ab_build 200 2 "${V[@]}"
ab_probe 100 "${V[0]}@1,32,16384" "${V[1]}@1,16,16384" "${V[2]}@1,8,16384" "${V[3]}@8,16,2048" "${V[4]}@4,32,4096"
ab_tests 150 3 -x -k "d64_full_$T64 or d128_full_$T128 or d256_full_$T256 or d128_causal_$T128C or d64_causal_$T64C" \
  tests/flashcore_cutlass/test_kernels_gpu.py
ab_cap_phase B
git apply -R "$PATCH"
