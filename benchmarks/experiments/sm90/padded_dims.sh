# One device call: the D64 non-causal tiles on head dims 32..64 (padded_dims.py), then Nsight
# Compute of the two-CTA tile at D40 and D48 (L2 sectors against requests: does a 16-byte aligned
# row cost more sectors a row than a 32-byte aligned one?).
#   OUT=... bash benchmarks/experiments/sm90/padded_dims.sh
set -u
C2=fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p1_kv1_c2
W=fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1
P0=fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p0_kv1
BUILD_ARGS="--only $C2 --only $W --only $P0" bash benchmarks/device_run.sh build > /tmp/b.log 2>&1; tail -3 /tmp/b.log
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 benchmarks/experiments/sm90/padded_dims.py $C2 $W $P0 --json $OUT/padded_dims.json
M=gpu__time_duration.sum,lts__t_sectors.sum,lts__t_requests.sum,dram__bytes_read.sum,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active
for d in 40 48; do
  ncu --clock-control none -k regex:kernel_entry --launch-skip 2 --launch-count 1 --metrics $M --csv --page details \
    python3 benchmarks/experiments/sm90/profile_cells.py --impl $C2 --d $d --shape 16,32,1024 > $OUT/ncu_d$d.csv 2>$OUT/ncu_d$d.err
  echo "D$d ncu rc=$?"; grep -E "gpu__time|lts__t_sectors.sum|lts__t_requests|dram__bytes_read" $OUT/ncu_d$d.csv | cut -d, -f12- | head
done
