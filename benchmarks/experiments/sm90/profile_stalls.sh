# Nsight Compute on the H100: where the consumers' cycles go (warp stall reasons, pipe use,
# instruction counts) at the short-sequence D64 cell against cuDNN's kernel and against our own
# long-sequence run; and the packed-sequence kernel against the same work batched. Writes
# $OUT/ncu_stalls.tgz (raw CSV pages). Needs the variants below built (device_run.sh build).
#   bash profile_stalls.sh [short] [long] [varlen]   (default: all three)
set -u
V192=fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1
V128=fc_sm90_bf16_d64_full_m128_n128_s2_sch1_p1_kv1
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
D=/tmp/ncu_stalls; rm -rf $D; mkdir -p $D
prof() { tag=$1; filter=$2; shift 2
  ncu --clock-control none -k regex:"$filter" --launch-skip 2 --launch-count 1 \
    --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section SpeedOfLight \
    --csv --page raw "$@" > $D/$tag.csv 2>$D/$tag.err
  echo "$tag rc=$?"; }
CELL=benchmarks/experiments/sm90/profile_cells.py
for part in ${*:-short long varlen}; do
  case $part in
    short) prof d64nc512_ours192 kernel_entry python3 $CELL --impl $V192 --d 64 --s 512
           prof d64nc512_ours128 kernel_entry python3 $CELL --impl $V128 --d 64 --s 512
           prof d64nc512_cudnn 'cudnn|sdpa|fmha|flash' python3 $CELL --impl sdpa --d 64 --s 512 ;;
    long)  prof d64nc4k_ours192 kernel_entry python3 $CELL --impl $V192 --d 64 --s 4096
           prof d64nc4k_cudnn 'cudnn|sdpa|fmha|flash' python3 $CELL --impl sdpa --d 64 --s 4096 ;;
    varlen) for impl in batched batched_same_layout varlen; do
             prof varlen_$impl kernel_entry python3 benchmarks/experiments/sm90/profile_varlen.py --impl $impl
           done ;;
  esac
done
tar czf $OUT/ncu_stalls.tgz -C $D .
