#!/usr/bin/env bash
# What bounds the seed shape's kernel (fp16 (1, 8, 512, 64)): Nsight Compute with warm L2 (the
# graph-replay case) on the seed's winner (64x128, one CTA per tile), the key-split twin (4 WGs)
# and cuDNN; then kernel time against the number of CTAs (heads) at S = 512, and against S at 8
# heads: a per-CTA latency chain stays flat in the CTA count, a shared resource does not.
# Builds its variants; writes $OUT/profile_seed.tgz.
set -u
cd "$(dirname "$0")/../../.."
D=/tmp/profile_seed; rm -rf $D; mkdir -p $D
OUT=$D/run BUILD_ARGS="--only fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1 --only fc_sm90_fp16_d64_full_m64_n64_s4_sch1_p0_kv1_ks4" \
  bash benchmarks/device_run.sh build > $D/build.txt 2>&1; tail -3 $D/build.txt
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
prof() { tag=$1; filter=$2; shift 2
  ncu --clock-control none --cache-control none -k regex:"$filter" --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section LaunchStats \
    --section Occupancy --section ComputeWorkloadAnalysis --csv --page raw \
    python3 benchmarks/experiments/sm90/profile_cells.py --shape 1,8,512 --dtype fp16 --d 64 "$@" > $D/$tag.csv 2>$D/$tag.err
  echo "$tag rc=$?"; }
prof kv1 kernel_entry --impl fc_sm90_fp16_d64_full_m64_n128_s2_sch1_p0_kv1
prof ks4 kernel_entry --impl fc_sm90_fp16_d64_full_m64_n64_s4_sch1_p0_kv1_ks4
prof cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa
python3 benchmarks/experiments/sm90/ncu_summary.py "$D" gpu__time_duration.sum \
  sm__throughput.avg.pct_of_peak_sustained_elapsed gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed \
  lts__t_sector_hit_rate.pct lts__throughput.avg.pct_of_peak_sustained_elapsed sm__cycles_active.avg \
  smsp__average_warp_latency_per_inst_issued.ratio launch__grid_size launch__registers_per_thread
python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 --shape 1,1,512,64 --shape 1,2,512,64 --shape 1,4,512,64 \
  --shape 1,8,512,64 --shape 1,16,512,64 --shape 1,8,128,64 --shape 1,8,256,64 --shape 1,8,1024,64 \
  --json $D/kernel_times_ctas.json 2>&1 | grep -v Warn | tee $D/kernel_times_ctas.txt
tar czf ${OUT:-/tmp}/profile_seed.tgz -C $D .
