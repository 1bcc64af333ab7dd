# Nsight Compute on the H100: how much of the L2's bandwidth the long-sequence non-causal cells
# use, ours (the shipped winners) against cuDNN, with D64 as a control (half the K/V bytes per
# FLOP). Question: is K/V streaming from L2 a co-limiter at D128/D256 (the case for FA3's 2-CTA
# clusters with TMA multicast)? Needs the variants below built (carried build/cache/build or
# device_run.sh build). Writes $OUT/ncu_l2.tgz (CSV) and prints a short table.
set -u
V64=fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1
V128=fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1
V256=fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
M=gpu__time_duration.sum,lts__t_bytes.sum,lts__t_bytes.sum.per_second
M=$M,lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors.avg.pct_of_peak_sustained_elapsed
M=$M,dram__bytes_read.sum,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active
M=$M,sm__cycles_elapsed.avg.per_second
D=/tmp/ncu_l2; rm -rf $D; mkdir -p $D
prof() { tag=$1; shift
  ncu --clock-control none -k regex:'kernel_entry|sdpa|fmha|flash|cudnn' --launch-skip 2 --launch-count 1 \
    --metrics $M --section SpeedOfLight --section MemoryWorkloadAnalysis --csv --page raw \
    python3 benchmarks/experiments/sm90/profile_cells.py "$@" > $D/$tag.csv 2>$D/$tag.err
  rc=$?
  if [ $rc != 0 ]; then  # a metric this ncu does not know: the sections alone
    ncu --clock-control none -k regex:'kernel_entry|sdpa|fmha|flash|cudnn' --launch-skip 2 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --csv --page raw \
      python3 benchmarks/experiments/sm90/profile_cells.py "$@" > $D/$tag.csv 2>>$D/$tag.err; rc=$?
  fi
  echo "$tag rc=$rc"; }
for s in ${S_LIST:-16384 4096}; do
  prof d128_${s}_ours --impl $V128 --d 128 --s $s
  prof d128_${s}_cudnn --impl sdpa --d 128 --s $s
  prof d256_${s}_ours --impl $V256 --d 256 --s $s
  prof d256_${s}_cudnn --impl sdpa --d 256 --s $s
done
prof d64_16384_ours --impl $V64 --d 64 --s 16384
prof d64_16384_cudnn --impl sdpa --d 64 --s 16384
tar czf $OUT/ncu_l2.tgz -C $D .
python3 - "$D" <<'PY'
import csv, glob, os, sys
keys = ["gpu__time_duration.sum", "lts__t_bytes.sum", "lts__t_bytes.sum.per_second",
        "lts__throughput.avg.pct_of_peak_sustained_elapsed", "lts__t_sectors.avg.pct_of_peak_sustained_elapsed",
        "dram__bytes_read.sum", "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",
        "sm__cycles_elapsed.avg.per_second"]
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    rows = list(csv.reader(open(f)))
    hdr = next((i for i, r in enumerate(rows) if "ID" in r), None)
    if hdr is None:
        print(os.path.basename(f), "no data"); continue
    names, units, vals = rows[hdr], rows[hdr + 1], rows[hdr + 2]
    out = []
    for k in keys:
        if k in names:
            j = names.index(k); out.append(f"{k.split('.')[0].split('__')[-1]}[{k.split('.')[-1][:12]}]={vals[j]}{units[j]}")
    print(os.path.basename(f)[:-4], vals[names.index("Kernel Name")][:40] if "Kernel Name" in names else "", " ".join(out))
PY
