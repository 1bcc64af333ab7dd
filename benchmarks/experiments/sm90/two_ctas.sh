# Two one-WG CTAs per SM (ctas_per_sm = 2, the "_c2" variants) against the shipped winners of
# the D64/D128 grid keys: build, occupancy check (Nsight Compute's launch statistics), tune of the
# grid keys with every built variant (tuner medians, 500 ms warm-up), then the GPU kernel tests of
# the new variants. Writes $OUT/table_two_ctas.json and prints per key the variants' medians.
set -u
V=""
for d in 64 128; do for m in full causal; do
  case $d in
    64)  new="m64_n128_s2_sch1_p1_kv1_c2 m64_n128_s2_sch1_p0_kv1_c2"
         old="m128_n128_s2_sch2_p1_kv1 m128_n128_s2_sch1_p1_kv1 m192_n128_s2_sch1_p1_kv1"
         [ $m = full ] && new="$new m64_n128_s3_sch1_p1_kv1_c2" ;;
    128) new="m64_n64_s2_sch1_p1_kv1_c2 m64_n80_s2_sch1_p1_kv1_c2"
         old="m128_n128_s2_sch2_p1_kv1 m128_n128_s2_sch1_p1_kv1" ;;
  esac
  for t in $new $old; do V="$V --only fc_sm90_bf16_d${d}_${m}_$t"; done
done; done
BUILD_ARGS="$V" bash benchmarks/device_run.sh build > /tmp/b.log 2>&1; grep -E 'built|spill|rror' /tmp/b.log | tail -5
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
ncu --section LaunchStats --section Occupancy -k regex:kernel_entry --launch-count 1 \
  python3 benchmarks/experiments/sm90/profile_cells.py --impl fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p1_kv1_c2 --d 64 --s 512 \
  2>&1 | grep -E "Block Limit|Theoretical Occ|Achieved Occ|Grid Size|Registers Per|Shared Memory Config|Dynamic Shared" | head -14
for d in 64 128; do
  python3 -m flashcore_cutlass tune -q --suite grid --head-dim $d --careful ${CAREFUL:-5} --warmup-ms 500 2>&1 | tail -2
done
python3 -m flashcore_cutlass table --json > $OUT/table_two_ctas.json
python3 benchmarks/experiments/sm90/table_by_key.py $OUT/table_two_ctas.json --prefix bf16_d --top 6
timeout ${TEST_TIMEOUT:-150} python3 -m pytest -q tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_features_gpu.py -k "c2" 2>&1 | tail -4
