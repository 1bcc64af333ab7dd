# A/B of sm90 headers on the H100 by Nsight Compute kernel times (gpu__time_duration, median
# of 3 launches; no replay, so ~1 % repeatable): B = the tree as it is, A = the tree with each
# HEADER replaced by its ALT. Builds the cells' variants for each in turn (same build cache: only
# variants whose hash changed rebuild), with cuDNN's kernel on one cell as a control in each phase.
#   git show REF:templates/include/flashcore/sm90/softmax.cuh > alt.cuh   (in the repo root: untracked files travel)
#   bash benchmarks/experiments/sm90/ab_cells.sh templates/include/flashcore/sm90/softmax.cuh alt.cuh [HEADER2 ALT2 ...]
# AB_CELLS (lines of "variant d s flags", flags "-" or profile_cells.py's, e.g. "--causal" or "--shape 1,8,512
# --dtype fp16"; variant "sdpa" times torch's kernel) replaces the default cells.
# Writes $OUT/ab_cells.txt (tag, cell, variant, us).
set -u
PAIRS=("$@")
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
# The project installed as device_run.sh installs it (a fresh machine has only the tree: without this
# every cell failed with "No module named 'flashcore_codegen'", 2026-11-29).
python3 -c "import flashcore_codegen" 2>/dev/null ||
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/tmp/ab_install.log 2>&1 ||
  { cat /tmp/ab_install.log; exit 1; }
DEFAULT_CELLS=(  # variant | d | s | causal flag
  "fc_sm90_bf16_d64_full_m128_n128_s2_sch1_p1_kv1 64 512 -"
  "fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1 64 512 -"
  "fc_sm90_bf16_d64_full_m192_n128_s2_sch1_p1_kv1 64 4096 -"
  "fc_sm90_bf16_d64_causal_m128_n128_s2_sch1_p1_kv1 64 512 --causal"
  "fc_sm90_bf16_d64_causal_m128_n128_s2_sch1_p1_kv1 64 2048 --causal"
  "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p1_kv1 128 512 -"
  "fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1 128 1024 -"
  "fc_sm90_bf16_d128_causal_m128_n128_s2_sch2_p1_kv1 128 1024 --causal"
  "fc_sm90_bf16_d256_full_m128_n80_s2_sch1_p1_kv1 256 4096 -"
  "fc_sm90_bf16_d256_causal_m128_n48_s2_sch1_p1_kv1 256 512 --causal"
)
CELLS=("${DEFAULT_CELLS[@]}")
if [ -n "${AB_CELLS:-}" ]; then mapfile -t CELLS <<< "$AB_CELLS"; fi
RES=$OUT/ab_cells.txt
time_cell() {  # tag variant d s flags... (profile_cells.py's, e.g. --causal, or --shape 1,8,512 --dtype fp16; "-": none)
  local flag="${*:5}"; [ "$flag" = "-" ] && flag=""
  local label=${flag// /_}; [ -z "$label" ] && label=-
  local filter=kernel_entry; [ "$2" = sdpa ] && filter='cudnn|sdpa|fmha|flash'
  ncu --clock-control none -k regex:"$filter" --launch-skip 2 --launch-count 3 --metrics gpu__time_duration.sum --csv \
    python3 benchmarks/experiments/sm90/profile_cells.py --impl $2 --d $3 --s $4 $flag --calls 6 2>/dev/null \
    | python3 -c "
import csv,sys,statistics
rows=[r for r in csv.reader(l for l in sys.stdin if l.startswith('\"'))]
h=rows[0]; i=h.index('Metric Value')
v=[float(r[i].replace(',',''))/1000 for r in rows[1:]]
print('$1 d$3 s$4 ${label} $2 %.2f' % statistics.median(v) if v else '$1 d$3 s$4 ${label} $2 nan')" | tee -a $RES
}
phase() {  # tag
  local only=""; for c in "${CELLS[@]}"; do [ "${c%% *}" = sdpa ] || only="$only --only ${c%% *}"; done
  python3 -m flashcore_cutlass build -q $only 2>&1 | tail -1
  time_cell $1 sdpa 64 512 -
  for c in "${CELLS[@]}"; do time_cell $1 $c; done
}
phase B
for ((i = 0; i < ${#PAIRS[@]}; i += 2)); do cp "${PAIRS[i]}" "/tmp/ab_B_$((i / 2))"; cp "${PAIRS[i + 1]}" "${PAIRS[i]}"; done
phase A
for ((i = 0; i < ${#PAIRS[@]}; i += 2)); do cp "/tmp/ab_B_$((i / 2))" "${PAIRS[i]}"; done
