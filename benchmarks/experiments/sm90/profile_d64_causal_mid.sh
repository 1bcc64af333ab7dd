# Nsight Compute at the D64 causal S=1024 and S=2048 grid cells (bf16), the two cells under 0.98x cuDNN on the
# H200 at f3194b3 (0.943 / 0.962): the shipped winners (three-CTA 64x64 at 1k, 64x96 at 2k) and cuDNN's kernel,
# one launch each at unlocked clocks. Needs the variants built (a carried build). Writes
# $OUT/ncu_d64_causal_mid.tgz and prints time, clock, issue rate, pipes and stall reasons.
set -u
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
D=/tmp/ncu_d64_causal_mid; rm -rf $D; mkdir -p $D
prof() { tag=$1; filter=$2; shift 2
  timeout 75 ncu --clock-control none -k regex:"$filter" --launch-skip 2 --launch-count 1 \
    --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section SpeedOfLight \
    --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
    --metrics sm__cycles_elapsed.avg.per_second,smsp__cycles_active.avg.pct_of_peak_sustained_elapsed,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed \
    --csv --page raw python3 benchmarks/experiments/sm90/profile_cells.py "$@" > $D/$tag.csv 2>$D/$tag.err
  echo "$tag rc=$?"; tar czf $OUT/ncu_d64_causal_mid.tgz -C $D .; }  # packed after each: a cut call keeps the rest
C3_64=fc_sm90_bf16_d64_causal_m64_n64_s2_sch1_p1_kv1_c3_lr1
C3_96=fc_sm90_bf16_d64_causal_m64_n96_s2_sch1_p1_kv1_c3_lr1
prof s1k_c3_64 kernel_entry --impl $C3_64 --d 64 --s 1024 --causal
prof s1k_cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa --d 64 --s 1024 --causal
prof s2k_c3_96 kernel_entry --impl $C3_96 --d 64 --s 2048 --causal
prof s2k_cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa --d 64 --s 2048 --causal
python3 benchmarks/experiments/sm90/ncu_summary.py "$D" Kernel\ Name gpu__time_duration.sum sm__cycles_elapsed.avg.per_second \
  smsp__inst_executed.sum smsp__issue_active.avg.pct_of_peak_sustained_active \
  sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed sm__warps_active.avg.pct_of_peak_sustained_active \
  launch__grid_size launch__block_size launch__registers_per_thread launch__occupancy_limit_shared_mem \
  smsp__average_warp_latency_per_inst_issued.ratio lts__t_sector_hit_rate.pct dram__bytes_read.sum
