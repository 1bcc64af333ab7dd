#!/usr/bin/env bash
# Nsight Compute with per-instruction source counters, ours against cuDNN's kernel, so that cuDNN's SASS (its key
# loop: instruction mix per key tile, where its warps stall) can be read beside ours. The cell the last session
# left as the one per-cycle gap: D64 non-causal S = 512 (cuDNN 4.5 % ahead back to back at the same clock), with the
# shipped two-CTA 64x128 tile and the 128x128 ping-pong tile (K/V shared like cuDNN's); and D128 non-causal 2k
# (the power-bound head dim) with the shipped 128x128 ping-pong tile. After device_run.sh installed the package
# (e.g. its doctor stage):
#   OUT=... bash benchmarks/experiments/sm90/profile_sass_vs_cudnn.sh
# Writes $OUT/ncu_sass.tgz: per kernel the .ncu-rep, the raw page (TAG.csv) and the source page as SASS (TAG.sass, CSV).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_sass PYTHONUNBUFFERED=1
C2=fc_sm90_bf16_d64_full_m64_n128_s2_sch1_p1_kv1_c2_lr1
PP64=fc_sm90_bf16_d64_full_m128_n128_s2_sch2_p1_kv1_lr1
PP128=fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1
( time timeout 150 python3 -m flashcore_cutlass build -q --only $C2 --only $PP64 --only $PP128 ) 2>&1 | tail -4
D=/tmp/ncu_sass; rm -rf $D; mkdir -p $D
CELL=benchmarks/experiments/sm90/profile_cells.py
prof() { tag=$1; filter=$2; shift 2
  timeout 120 ncu --clock-control none -k regex:"$filter" --launch-skip 2 --launch-count 1 --import-source no \
    --section SourceCounters --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis \
    --section SpeedOfLight --section LaunchStats --section Occupancy --section MemoryWorkloadAnalysis \
    -o $D/$tag python3 $CELL "$@" > $D/$tag.log 2>&1
  echo "$tag rc=$?"
  ncu -i $D/$tag.ncu-rep --csv --page raw > $D/$tag.csv 2>/dev/null
  ncu -i $D/$tag.ncu-rep --csv --page source --print-source sass > $D/$tag.sass 2>$D/$tag.sass.err
  tar czf $OUT/ncu_sass.tgz -C $D .  # packed after each: a cut call keeps the rest
}
prof d64_512_c2 kernel_entry --impl $C2 --d 64 --s 512
prof d64_512_pp kernel_entry --impl $PP64 --d 64 --s 512
prof d64_512_cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa --d 64 --s 512
prof d128_2k_pp kernel_entry --impl $PP128 --d 128 --s 2048
prof d128_2k_cudnn 'cudnn|sdpa|fmha|flash' --impl sdpa --d 128 --s 2048
python3 benchmarks/experiments/sm90/ncu_summary.py "$D" Kernel\ Name gpu__time_duration.sum gpc__cycles_elapsed.max \
  gpc__cycles_elapsed.avg.per_second smsp__inst_executed.sum smsp__issue_active.avg.per_cycle_active \
  sm__warps_active.avg.pct_of_peak_sustained_active launch__grid_size launch__block_size launch__registers_per_thread \
  lts__lts2xbar_cycles_active.avg.pct_of_peak_sustained_elapsed sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active \
  sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
python3 benchmarks/experiments/sm90/ncu_sass_summary.py $D/*.sass
