# Two CTAs per SM of two consumer WGs (D64 128x64 / 128x48 "_c2": 4 consumer WGs per SM, K/V
# shared by 128 rows) against one-WG c2 tiles and the shipped winners, D64 grid keys: build, tune
# (tuner medians, 500 ms warm-up), then the short cells timed as the grid does and queued.
# Runs at commit 78d613e only: those tiles were measured slower (benchmarks/NOTES.md, 2026-11-26
# 20:02-, call 6) and their register split (common.cuh RegisterSplit<2, false, 2>) was removed.
set -u
V=""
for m in full causal; do
  for t in m128_n64_s2_sch1_p1_kv1_c2 m128_n64_s2_sch2_p1_kv1_c2 m128_n48_s2_sch1_p1_kv1_c2 m64_n128_s2_sch1_p1_kv1_c2 \
           m128_n128_s2_sch2_p1_kv1 m128_n128_s2_sch1_p1_kv1 m192_n128_s2_sch1_p1_kv1; do
    V="$V --only fc_sm90_bf16_d64_${m}_$t"
  done
done
BUILD_ARGS="$V" bash benchmarks/device_run.sh build > /tmp/b.log 2>&1; grep -E 'built|spill|rror' /tmp/b.log | tail -5
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 -m flashcore_cutlass tune -q --suite grid --head-dim 64 --careful ${CAREFUL:-6} --warmup-ms 500 2>&1 | tail -1
python3 -m flashcore_cutlass table --json > $OUT/table_two_ctas_wide.json
python3 benchmarks/experiments/sm90/table_by_key.py $OUT/table_two_ctas_wide.json --prefix bf16_d64 --top 5
A=m128_n64_s2_sch1_p1_kv1_c2; B=m128_n48_s2_sch1_p1_kv1_c2; C=m64_n128_s2_sch1_p1_kv1_c2
python3 benchmarks/experiments/sm90/two_ctas_ab.py --json $OUT/two_ctas_wide_ab.json \
  --cell 64,512,causal,$A,$B,$C,m128_n128_s2_sch2_p1_kv1 --cell 64,1024,causal,$A,$B,$C,m128_n128_s2_sch2_p1_kv1 \
  --cell 64,512,full,$A,$B,$C,m192_n128_s2_sch1_p1_kv1 --cell 64,1024,full,$A,$B,$C,m192_n128_s2_sch1_p1_kv1
timeout ${TEST_TIMEOUT:-120} python3 -m pytest -q tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py -k "m128_n64_s2_sch1_p1_kv1_c2 or m128_n48" 2>&1 | tail -2
