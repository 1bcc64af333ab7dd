set -u
V64=fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1
V64C=fc_sm90_bf16_d64_causal_m128_n128_s2_sch1_p1_kv1
V128=fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1
V256C=fc_sm90_bf16_d256_causal_m128_n80_s2_sch1_p1_kv1
BUILD_ARGS="--only $V64 --only $V64C --only $V128 --only $V256C" bash benchmarks/device_run.sh build > /tmp/b.log 2>&1; tail -5 /tmp/b.log
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
M=dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,lts__t_bytes.sum,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,smsp__warps_active.avg.per_cycle_active
prof() { tag=$1; shift
  ncu --clock-control none -k regex:'kernel_entry|sdpa|fmha|flash|cudnn' --launch-skip 2 --launch-count 1 \
    --section WarpStateStats --metrics $M --csv --page details python3 benchmarks/experiments/sm90/profile_cells.py "$@" > $OUT/ncu_$tag.csv 2>$OUT/ncu_$tag.err
  echo "$tag rc=$?"; }
prof d64nc_ours --impl $V64 --d 64 --s 512

prof d64c_ours --impl $V64C --d 64 --s 512 --causal

prof d128nc_ours --impl $V128 --d 128 --s 512

prof d256c_ours --impl $V256C --d 256 --s 512 --causal

prof d64nc16k_ours --impl $V64 --d 64 --s 16384

cd $OUT && tar czf ncu.tgz ncu_* && rm ncu_*; ls $OUT
