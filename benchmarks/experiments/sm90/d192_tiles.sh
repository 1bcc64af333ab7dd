A=""; for n in n64_s2_sch1 n64_s2_sch2 n80_s2_sch1 n80_s2_sch2 n96_s2_sch1 n112_s2_sch1; do A="$A --only fc_sm90_bf16_d192_causal_m128_${n}_p1_kv1"; done
BUILD_ARGS="$A" bash benchmarks/device_run.sh build > /tmp/b.log 2>&1; grep -E 'built|spill' /tmp/b.log | tail -3
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 -m flashcore_cutlass tune --shape 1,16,4096,4096 --dtype bf16 --head-dim 192 --head-dim-v 128 --causal 2>&1 | tail -3
python3 -m flashcore_cutlass tune --shape 2,16,2048,2048 --shape 8,16,1024,1024 --dtype bf16 --head-dim 192 --causal 2>&1 | tail -4
python3 -m flashcore_cutlass table --json > $OUT/table_d192.json
python3 benchmarks/experiments/sm90/table_by_key.py $OUT/table_d192.json
