#!/usr/bin/env bash
# Per-warpgroup key ranges on the D256 128x80 tile, which won the grid's causal 8k/16k keys without them
# (benchmarks/NOTES.md, 2026-11-29 15:05-): build the _wk1 twin beside the two tiles it would compete with
# (own cache dir, after device_run.sh installed the package), each tile once in a watched child, its GPU tests,
# then the interleaved A/B of two_ctas_ab.py (SDPA in the same rounds) at the grid's D256 causal cells.
#   OUT=... bash benchmarks/experiments/sm90/wk1_d256_n80.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_wk80 PYTHONUNBUFFERED=1
C=s2_sch1_p1_kv1_lr1
TILES=(m128_n80_$C m128_n80_${C}_wk1 m128_n64_${C}_wk1)  # the _wk1 twin, the shipped 128x80, the shipped 128x64 _wk1
V=""
for t in "${TILES[@]}"; do V="$V --only fc_sm90_bf16_d256_causal_$t"; done
timeout 200 python3 -m flashcore_cutlass build -q $V 2>&1 | tail -4
# Each tile once at a grid cell in a watched child first: a kernel that hangs takes pytest and the A/B with it (and
# a hung call returns to no signal), as the first run of this script did (benchmarks/NOTES.md, 2026-11-29 16:59-).
timeout 120 python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 25 --reps 20 \
  $(for t in "${TILES[@]}"; do echo "fc_sm90_bf16_d256_causal_$t@4,8,4096"; done) 2>&1 \
  | tee "$OUT/wk80_probe.txt"
[ "$(grep -c 'ok max' "$OUT/wk80_probe.txt")" = ${#TILES[@]} ] || { echo "a tile hung or failed: no tests, no A/B"; exit 1; }
timeout --signal=INT --kill-after=15 "${TEST_S:-240}" python3 -m pytest -q -x -k "m128_n80 and wk1" tests/flashcore_cutlass/test_kernels_gpu.py \
  tests/flashcore_cutlass/test_features_gpu.py tests/flashcore_cutlass/test_varlen_gpu.py 2>&1 | tee "$OUT/wk80_tests.log" | tail -4
CELLS=()
for s in 2048 4096 8192 16384; do CELLS+=(--cell "256,$s,causal,$(IFS=,; echo "${TILES[*]}")"); done
timeout "${AB_S:-200}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-3}" --json "$OUT/wk80_ab.json" \
  "${CELLS[@]}" 2>&1 | tail -20
