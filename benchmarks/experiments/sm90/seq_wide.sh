#!/usr/bin/env bash
# Wider key tiles on the sequential schedule (sch0), which the resource model admits since 61d4f6b (P packed over S:
# O and S bound the registers): D64 192x192 (FA3's D64 non-causal tile, which keeps the overlap by passing P through
# shared memory: hopper/tile_size.h), D128 128x176 / 128x192 / 192x128,
# D64 64x192 two-CTA tiles for the 512 cell, beside the grid's shipped non-causal winners. Each tile once at a grid
# cell in a watched child (a new schedule/tile pair may hang), their GPU tests, then the interleaved A/B of
# two_ctas_ab.py (SDPA in the same rounds). After device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... bash benchmarks/experiments/sm90/seq_wide.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_seqwide PYTHONUNBUFFERED=1
P=p1_kv1
D64=(m192_n128_s2_sch1_${P}_lr1 m192_n192_s2_sch0_${P}_lr1 m192_n192_s2_sch0_${P} m192_n128_s2_sch0_${P}_lr1)
D64S=(m64_n128_s2_sch1_${P}_c2_lr1 m64_n192_s2_sch0_${P}_c2_lr1 m64_n192_s2_sch1_${P}_c2_lr1)
D128=(m128_n128_s2_sch2_${P}_lr1 m128_n192_s2_sch0_${P}_lr1 m128_n176_s2_sch0_${P}_lr1 m192_n128_s2_sch0_${P}_lr1)
V=()
for t in "${D64[@]}" "${D64S[@]}"; do V+=(fc_sm90_bf16_d64_full_$t); done
for t in "${D128[@]}"; do V+=(fc_sm90_bf16_d128_full_$t); done
( time timeout 240 python3 -m flashcore_cutlass build -q $(printf -- '--only %s ' "${V[@]}") ) 2>&1 | tail -8
timeout 150 python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 25 --reps 20 \
  $(for v in "${V[@]}"; do case $v in *d64*m64*) echo "$v@32,32,512";; *d64*) echo "$v@4,32,4096";; *) echo "$v@4,16,4096";; esac; done) \
  2>&1 | tee "$OUT/seqwide_probe.txt"
[ "$(grep -c 'ok max' "$OUT/seqwide_probe.txt")" = ${#V[@]} ] || { echo "a tile hung or failed: no tests, no A/B"; exit 1; }
timeout --signal=INT --kill-after=15 "${TEST_S:-150}" python3 -m pytest -q -x -k "sch0 or n192 or n176" \
  tests/flashcore_cutlass/test_kernels_gpu.py 2>&1 | tee "$OUT/seqwide_tests.log" | tail -4
CELLS=(--cell "64,512,full,$(IFS=,; echo "${D64S[*]}")")
for s in 1024 4096 16384; do CELLS+=(--cell "64,$s,full,$(IFS=,; echo "${D64[*]}")"); done
for s in 2048 16384; do CELLS+=(--cell "128,$s,full,$(IFS=,; echo "${D128[*]}")"); done
timeout "${AB_S:-240}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-3}" --json "$OUT/seqwide_ab.json" \
  "${CELLS[@]}" 2>&1 | tail -40
