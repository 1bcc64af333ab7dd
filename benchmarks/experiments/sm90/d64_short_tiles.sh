#!/usr/bin/env bash
# D64 non-causal at S = 512 / 1k (the grid's weakest non-causal cell): the 128-row tiles (overlap, ping-pong; no
# padding at 512, the 192-row tile pads 12.5 %, and K/V shared by two warpgroups, half the 64-row tiles' L2->SM bytes)
# beside the shipped two-CTA 64x128 and 192x128 tiles, interleaved with SDPA (two_ctas_ab.py). After device_run.sh
# installed the package (e.g. its doctor stage).
#   OUT=... ROUNDS=5 bash benchmarks/experiments/sm90/d64_short_tiles.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_d64short PYTHONUNBUFFERED=1
T=(m64_n128_s2_sch1_p1_kv1_c2_lr1 m192_n128_s2_sch1_p1_kv1_lr1 m128_n128_s2_sch1_p1_kv1_lr1 m128_n128_s2_sch2_p1_kv1_lr1
   m128_n128_s3_sch2_p1_kv1_lr1)
V=()
for t in "${T[@]}"; do V+=(fc_sm90_bf16_d64_full_$t); done
( time timeout 150 python3 -m flashcore_cutlass build -q $(printf -- '--only %s ' "${V[@]}") ) 2>&1 | tail -5
timeout --signal=INT --kill-after=15 "${TEST_S:-100}" python3 -m pytest -q -k "d64_full_m128" \
  tests/flashcore_cutlass/test_kernels_gpu.py 2>&1 | tee "$OUT/d64short_tests.log" | tail -3
CELLS=()
for s in 512 1024; do CELLS+=(--cell "64,$s,full,$(IFS=,; echo "${T[*]}")"); done
timeout "${AB_S:-300}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-5}" --json "$OUT/d64short_ab.json" \
  "${CELLS[@]}" 2>&1 | tail -6
