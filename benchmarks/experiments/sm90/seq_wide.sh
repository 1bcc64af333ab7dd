#!/usr/bin/env bash
# Wider key tiles on the sequential schedule (sch0), which the resource model admits since 61d4f6b (P packed over S:
# O and S bound the registers): D64 192x192 (FA3's D64 non-causal tile, which keeps the overlap by passing P through
# shared memory: hopper/tile_size.h), D128 128x176 / 128x192 / 192x128,
# D64 64x192 two-CTA tiles for the 512 cell, beside the grid's shipped non-causal winners. Each tile once at a grid
# cell in a watched child (a new schedule/tile pair may hang), their GPU tests, then the interleaved A/B of
# two_ctas_ab.py (SDPA in the same rounds). After device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... bash benchmarks/experiments/sm90/seq_wide.sh
TAG=seqwide
. "$(dirname "$0")/ab_steps.sh"
P=p1_kv1
D64=(m192_n128_s2_sch1_${P}_lr1 m192_n192_s2_sch0_${P}_lr1 m192_n192_s2_sch0_${P} m192_n128_s2_sch0_${P}_lr1)
D64S=(m64_n128_s2_sch1_${P}_c2_lr1 m64_n192_s2_sch0_${P}_c2_lr1 m64_n192_s2_sch1_${P}_c2_lr1)
D128=(m128_n128_s2_sch2_${P}_lr1 m128_n192_s2_sch0_${P}_lr1 m128_n176_s2_sch0_${P}_lr1 m192_n128_s2_sch0_${P}_lr1)
V=()
for t in "${D64[@]}" "${D64S[@]}"; do V+=(fc_sm90_bf16_d64_full_$t); done
for t in "${D128[@]}"; do V+=(fc_sm90_bf16_d128_full_$t); done
ab_build 240 8 "${V[@]}"
ab_probe 150 $(for v in "${V[@]}"; do case $v in *d64*m64*) echo "$v@32,32,512";; *d64*) echo "$v@4,32,4096";; *) echo "$v@4,16,4096";; esac; done)
ab_tests 150 4 -x -k "sch0 or n192 or n176" tests/flashcore_cutlass/test_kernels_gpu.py
CELLS=(--cell "$(ab_cell 64 512 full "${D64S[@]}")")
for s in 1024 4096 16384; do CELLS+=(--cell "$(ab_cell 64 $s full "${D64[@]}")"); done
for s in 2048 16384; do CELLS+=(--cell "$(ab_cell 128 $s full "${D128[@]}")"); done
ab_run 240 3 40 "${CELLS[@]}"
