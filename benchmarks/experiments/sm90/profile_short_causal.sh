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
python3 - "$D" <<'P'
import csv, glob, os, sys
want = ["gpu__time_duration.sum", "smsp__inst_executed.sum", "smsp__issue_active.avg.pct_of_peak_sustained_active",
        "sm__warps_active.avg.pct_of_peak_sustained_active", "smsp__average_warp_latency_per_inst_issued.ratio"]
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    rows = list(csv.reader(open(f)))
    h = next((i for i, r in enumerate(rows) if "ID" in r), None)
    if h is None:
        print(os.path.basename(f), "no data"); continue
    d = dict(zip(rows[h], rows[h + 2]))
    stalls = sorted(((float(v.replace(",", "")), k) for k, v in d.items()
                     if k.startswith("smsp__average_warps_issue_stalled_") and k.endswith("_per_issue_active.ratio")
                     and v.replace(",", "").replace(".", "").isdigit()), reverse=True)[:6]
    tensor = {k: v for k, v in d.items() if "pipe_tensor" in k and k.endswith("pct_of_peak_sustained_active")}
    print(os.path.basename(f)[:-4], {k.split("__")[-1]: d.get(k) for k in want},
          [(k.replace("smsp__average_warps_issue_stalled_", "").replace("_per_issue_active.ratio", ""), v) for v, k in stalls],
          list(tensor.items())[:2])
P
