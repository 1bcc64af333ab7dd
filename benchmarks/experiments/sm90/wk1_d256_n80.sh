#!/usr/bin/env bash
# Per-warpgroup key ranges on the D256 128x80 tile, which won the grid's causal 8k/16k keys without them
# (benchmarks/NOTES.md, 2026-11-29 15:05-): build the _wk1 twin beside the two tiles it would compete with
# (own cache dir, after device_run.sh installed the package), each tile once in a watched child, its GPU tests,
# then the interleaved A/B of two_ctas_ab.py (SDPA in the same rounds) at the grid's D256 causal cells.
#   OUT=... bash benchmarks/experiments/sm90/wk1_d256_n80.sh
TAG=wk80
. "$(dirname "$0")/ab_steps.sh"
C=s2_sch1_p1_kv1_lr1
TILES=(m128_n80_$C m128_n80_${C}_wk1 m128_n64_${C}_wk1)  # the _wk1 twin, the shipped 128x80, the shipped 128x64 _wk1
V=()
for t in "${TILES[@]}"; do V+=(fc_sm90_bf16_d256_causal_$t); done
ab_build 200 4 "${V[@]}"
ab_probe 120 $(for v in "${V[@]}"; do echo "$v@4,8,4096"; done)
ab_tests 240 4 -x -k "m128_n80 and wk1" tests/flashcore_cutlass/test_kernels_gpu.py \
  tests/flashcore_cutlass/test_features_gpu.py tests/flashcore_cutlass/test_varlen_gpu.py
CELLS=()
for s in 2048 4096 8192 16384; do CELLS+=(--cell "$(ab_cell 256 $s causal "${TILES[@]}")"); done
ab_run 200 3 20 "${CELLS[@]}"
