# Nsight Compute at the D64 causal S=512 grid cell, where SDPA's kernel is ~13 % faster than ours
# timed queued: the shipped two-CTA tile and the 128x128 ping-pong tile against cuDNN's kernel.
# Warp stall reasons, instruction counts, pipe use. Needs the variants built (a carried build).
# Writes $OUT/ncu_short_causal.tgz and prints a few metrics per kernel.
set -u
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
D=/tmp/ncu_short_causal; rm -rf $D; mkdir -p $D
prof() { tag=$1; filter=$2; shift 2
  ncu --clock-control none -k regex:"$filter" --launch-skip 2 --launch-count 1 \
    --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section SpeedOfLight \
    --section Occupancy --csv --page raw python3 benchmarks/experiments/sm90/profile_cells.py "$@" > $D/$tag.csv 2>$D/$tag.err
  echo "$tag rc=$?"; }
prof c2 kernel_entry --impl fc_sm90_bf16_d64_causal_m64_n128_s2_sch1_p1_kv1_c2 --d 64 --s 512 --causal
prof pingpong kernel_entry --impl fc_sm90_bf16_d64_causal_m128_n128_s2_sch2_p1_kv1 --d 64 --s 512 --causal
prof cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa --d 64 --s 512 --causal
tar czf $OUT/ncu_short_causal.tgz -C $D .
python3 benchmarks/experiments/sm90/ncu_summary.py "$D" gpu__time_duration.sum smsp__inst_executed.sum \
  smsp__issue_active.avg.pct_of_peak_sustained_active sm__warps_active.avg.pct_of_peak_sustained_active \
  smsp__average_warp_latency_per_inst_issued.ratio
