#!/usr/bin/env bash
# P through shared memory (pv_smem = 1: the softmax stores P by stmatrix, PV reads it as an SS wgmma, FA3's choice for
# D64 non-causal): the grid's shipped tiles beside their _ps1 twins, and the wider tiles it lets the overlap hold (D64
# 192x192, D128 192x128). Each tile once at a grid cell in a watched child, the twins' GPU tests, then the interleaved
# A/B of two_ctas_ab.py (SDPA in the same rounds). After device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... ROUNDS=3 bash benchmarks/experiments/sm90/pv_smem.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_pvsmem PYTHONUNBUFFERED=1
S64=m192_n128_s2_sch1_p1_kv1_lr1      # D64 non-causal 1k-16k
C64=m192_n128_s2_sch1_p1_kv1_lr1_wk1  # D64 causal 2k-16k
T64=m64_n128_s2_sch1_p1_kv1_c2_lr1    # D64 non-causal 512
S128=m128_n128_s2_sch2_p1_kv1_lr1     # D128 non-causal 2k-16k
D64F=($S64 ${S64}_ps1 m192_n192_s2_sch1_p1_kv1_lr1_ps1)
D128F=($S128 ${S128}_ps1 m192_n128_s2_sch1_p1_kv1_lr1_ps1)
V=()
for t in "${D64F[@]}" $T64 ${T64}_ps1; do V+=(fc_sm90_bf16_d64_full_$t); done
for t in $C64 ${C64}_ps1; do V+=(fc_sm90_bf16_d64_causal_$t); done
for t in "${D128F[@]}"; do V+=(fc_sm90_bf16_d128_full_$t); done
( time timeout 200 python3 -m flashcore_cutlass build -q $(printf -- '--only %s ' "${V[@]}") ) 2>&1 | tail -8
timeout 120 python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 25 --reps 20 \
  $(for v in "${V[@]}"; do case $v in *d64*) echo "$v@4,32,4096";; *) echo "$v@4,16,4096";; esac; done) \
  2>&1 | tee "$OUT/pvsmem_probe.txt"
[ "$(grep -c 'ok max' "$OUT/pvsmem_probe.txt")" = ${#V[@]} ] || { echo "a tile hung or failed: no tests, no A/B"; exit 1; }
timeout --signal=INT --kill-after=15 "${TEST_S:-150}" python3 -m pytest -q -k "ps1" \
  tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py 2>&1 \
  | tee "$OUT/pvsmem_tests.log" | tail -4
CELLS=(--cell "64,512,full,$T64,${T64}_ps1")
for s in 1024 4096 16384; do CELLS+=(--cell "64,$s,full,$(IFS=,; echo "${D64F[*]}")"); done
CELLS+=(--cell "64,8192,causal,$C64,${C64}_ps1")
for s in 2048 16384; do CELLS+=(--cell "128,$s,full,$(IFS=,; echo "${D128F[*]}")"); done
timeout "${AB_S:-260}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-3}" --json "$OUT/pvsmem_ab.json" \
  "${CELLS[@]}" 2>&1 | tail -20
