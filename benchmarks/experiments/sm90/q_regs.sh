#!/usr/bin/env bash
# Q in registers (q_regs = 1, QRegsTraits): the grid's shipped tiles that have the registers for it, each beside its
# _qr1 twin. Each tile once at a grid cell in a watched child (a new operand path may hang), the twins' GPU tests,
# then the interleaved A/B of two_ctas_ab.py (SDPA in the same rounds) at the cells those tiles serve. After
# device_run.sh installed the package (e.g. its doctor stage).
#   OUT=... ROUNDS=5 bash benchmarks/experiments/sm90/q_regs.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_qregs PYTHONUNBUFFERED=1
D64F=m64_n128_s2_sch1_p1_kv1_c2_lr1   # D64 non-causal 512
D64C=m64_n64_s2_sch1_p1_kv1_c3_lr1    # D64 causal 512, 1k
D128F=m128_n128_s2_sch2_p1_kv1_lr1    # D128 non-causal 2k-16k
D128C=m128_n128_s2_sch1_p1_kv1_lr1    # D128 causal 512-4k
V=()
for t in $D64F $D64F"_qr1"; do V+=(fc_sm90_bf16_d64_full_$t); done
for t in $D64C $D64C"_qr1"; do V+=(fc_sm90_bf16_d64_causal_$t); done
for t in $D128F $D128F"_qr1"; do V+=(fc_sm90_bf16_d128_full_$t); done
for t in $D128C $D128C"_qr1"; do V+=(fc_sm90_bf16_d128_causal_$t); done
( time timeout 200 python3 -m flashcore_cutlass build -q $(printf -- '--only %s ' "${V[@]}") ) 2>&1 | tail -6
timeout 100 python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 25 --reps 20 \
  $(for v in "${V[@]}"; do case $v in *d64*) echo "$v@16,32,1024";; *) echo "$v@4,16,4096";; esac; done) \
  2>&1 | tee "$OUT/qregs_probe.txt"
[ "$(grep -c 'ok max' "$OUT/qregs_probe.txt")" = ${#V[@]} ] || { echo "a tile hung or failed: no tests, no A/B"; exit 1; }
timeout --signal=INT --kill-after=15 "${TEST_S:-150}" python3 -m pytest -q -k "qr1" \
  tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py 2>&1 \
  | tee "$OUT/qregs_tests.log" | tail -4
CELLS=(--cell "64,512,full,$D64F,${D64F}_qr1" --cell "64,1024,causal,$D64C,${D64C}_qr1"
       --cell "128,2048,full,$D128F,${D128F}_qr1" --cell "128,16384,full,$D128F,${D128F}_qr1"
       --cell "128,4096,causal,$D128C,${D128C}_qr1")
timeout "${AB_S:-240}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-3}" --json "$OUT/qregs_ab.json" \
  "${CELLS[@]}" 2>&1 | tail -20
