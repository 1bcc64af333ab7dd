#!/usr/bin/env bash
# The sequential ping-pong schedule (sch3): cuDNN 9.19's sm90 kernel as read from its SASS under Nsight Compute
# (profile_sass_vs_cudnn.sh): two consumer warpgroups on 64-row tiles sharing K/V, QK^T / softmax / PV in sequence,
# the softmax's exps bracketed by named barriers so the WGs take turns at them. Beside the grid's shipped winners,
# interleaved with SDPA (two_ctas_ab.py); first each tile once at a grid cell in a watched child (a new schedule may
# hang), then its GPU tests. After device_run.sh installed the package (e.g. its doctor stage). Falsified and
# reverted (benchmarks/NOTES.md, 2026-11-29 22:15-): the schedule lives in seq_pingpong.patch (the turn after the row
# maxima, call 3; call 2 took it before softmax_step), so apply that first:
#   git apply benchmarks/experiments/sm90/seq_pingpong.patch
#   OUT=... ROUNDS=3 [QUICK=1] bash benchmarks/experiments/sm90/seq_pingpong.sh
TAG=seqpp
. "$(dirname "$0")/ab_steps.sh"
P=p1_kv1
D64=(m64_n128_s2_sch1_${P}_c2_lr1 m192_n128_s2_sch1_${P}_lr1 m128_n128_s2_sch3_${P}_lr1 m128_n128_s3_sch3_${P}_lr1 m192_n128_s2_sch3_${P}_lr1)
D64C=(m64_n64_s3_sch1_${P}_c3_lr1 m64_n64_s2_sch1_${P}_c3_lr1 m128_n128_s2_sch3_${P}_lr1 m128_n64_s2_sch3_${P}_lr1_wk1)
D128=(m128_n128_s2_sch2_${P}_lr1 m128_n128_s2_sch3_${P}_lr1 m192_n128_s2_sch3_${P}_lr1)
D128C=(m128_n128_s2_sch1_${P}_lr1 m128_n128_s2_sch2_${P}_lr1 m128_n128_s2_sch3_${P}_lr1)
S64=(512 1024 4096); S128=(1024 16384)
if [ -n "${QUICK:-}" ]; then  # the second call: the turn moved after the row maxima; fewer tiles and cells
  D64=("${D64[@]:0:3}"); D64C=("${D64C[@]:0:1}" "${D64C[@]:2:1}"); D128=("${D128[@]:0:2}"); D128C=()
  S64=(512 1024); S128=(16384)
fi
V=()
for t in "${D64[@]}"; do V+=(fc_sm90_bf16_d64_full_$t); done
for t in "${D64C[@]}"; do V+=(fc_sm90_bf16_d64_causal_$t); done
for t in "${D128[@]}"; do V+=(fc_sm90_bf16_d128_full_$t); done
for t in "${D128C[@]}"; do V+=(fc_sm90_bf16_d128_causal_$t); done
ab_build 200 6 "${V[@]}"
NEW=($(printf '%s\n' "${V[@]}" | grep sch3))
ab_probe 120 $(for v in "${NEW[@]}"; do case $v in *d64*) echo "$v@32,32,512";; *) echo "$v@8,16,2048";; esac; done)
ab_tests 120 4 -x -k "sch3" tests/flashcore_cutlass/test_kernels_gpu.py
CELLS=()
for s in "${S64[@]}"; do CELLS+=(--cell "$(ab_cell 64 $s full "${D64[@]}")"); done
for s in "${S64[@]:0:2}"; do CELLS+=(--cell "$(ab_cell 64 $s causal "${D64C[@]}")"); done
for s in "${S128[@]}"; do CELLS+=(--cell "$(ab_cell 128 $s full "${D128[@]}")"); done
[ ${#D128C[@]} -gt 0 ] && CELLS+=(--cell "$(ab_cell 128 1024 causal "${D128C[@]}")")
ab_run 300 3 50 "${CELLS[@]}"
