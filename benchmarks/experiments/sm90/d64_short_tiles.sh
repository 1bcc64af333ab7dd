#!/usr/bin/env bash
# D64 non-causal at S = 512 / 1k (the grid's weakest non-causal cell): the 128-row tiles (overlap, ping-pong; no
# padding at 512, the 192-row tile pads 12.5 %, and K/V shared by two warpgroups, half the 64-row tiles' L2->SM bytes)
# beside the shipped two-CTA 64x128 and 192x128 tiles, interleaved with SDPA (two_ctas_ab.py). After device_run.sh
# installed the package (e.g. its doctor stage).
#   OUT=... ROUNDS=5 bash benchmarks/experiments/sm90/d64_short_tiles.sh
TAG=d64short
. "$(dirname "$0")/ab_steps.sh"
T=(m64_n128_s2_sch1_p1_kv1_c2_lr1 m192_n128_s2_sch1_p1_kv1_lr1 m128_n128_s2_sch1_p1_kv1_lr1 m128_n128_s2_sch2_p1_kv1_lr1
   m128_n128_s3_sch2_p1_kv1_lr1)
V=()
for t in "${T[@]}"; do V+=(fc_sm90_bf16_d64_full_$t); done
ab_build 150 5 "${V[@]}"
ab_tests 100 3 -k "d64_full_m128" tests/flashcore_cutlass/test_kernels_gpu.py
CELLS=()
for s in 512 1024; do CELLS+=(--cell "$(ab_cell 64 $s full "${T[@]}")"); done
ab_run 300 5 6 "${CELLS[@]}"
