#!/usr/bin/env bash
# Build the sm90 harness and run correctness + timing cases.
#   run.sh [build|check|time|all]   (default all). Env: CUTLASS_INC, NVCC, OUTDIR, FC_GROUPS (not GROUPS: a bash builtin).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
NVCC=${NVCC:-nvcc}
OUTDIR=${OUTDIR:-/tmp/fc_sm90}
mkdir -p "$OUTDIR"
if [ -z "${CUTLASS_INC:-}" ]; then
  CUTLASS_INC=$(python3 -c "import cutlass_library,os;print(os.path.join(cutlass_library.source_path,'include'))")
fi
FLAGS="-std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -DNDEBUG --expt-relaxed-constexpr -Xptxas=-v"
INC="-I$ROOT/templates/include -I$CUTLASS_INC"
NGROUPS=23
GROUPS_TO_BUILD=${FC_GROUPS:-$(seq 0 $((NGROUPS - 1)))}
Q1_GROUPS=${FC_Q1_GROUPS:-}
BIN="$OUTDIR/harness"
T="timeout ${CASE_TIMEOUT:-30}"  # a deadlocked kernel must not eat the whole device call

build() {
  local pids=() objs=()
  for g in $GROUPS_TO_BUILD; do
    local extra=""
    extra="-DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED"  # as templates/sm90.cu.j2 defines it
    $NVCC $FLAGS $extra $INC -DFC_GROUP=$g -c "$HERE/variants.cu" -o "$OUTDIR/variants_$g.o" > "$OUTDIR/variants_$g.log" 2>&1 &
    pids+=($!); objs+=("variants_$g")
  done
  # Run 7: the persistent groups again with one Q buffer, as <name>_q1.
  for g in $Q1_GROUPS; do
    $NVCC $FLAGS -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -DFLASHCORE_SM90_MAX_Q_STAGES=1 -DFC_SUFFIX=_q1 $INC -DFC_GROUP=$g \
      -c "$HERE/variants.cu" -o "$OUTDIR/variants_q1_$g.o" > "$OUTDIR/variants_q1_$g.log" 2>&1 &
    pids+=($!); objs+=("variants_q1_$g")
  done
  $NVCC -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a $INC -c "$HERE/harness.cu" -o "$OUTDIR/harness.o" \
    > "$OUTDIR/harness.log" 2>&1 || { cat "$OUTDIR/harness.log"; return 1; }
  for i in "${!pids[@]}"; do
    local o=${objs[$i]}
    wait "${pids[$i]}" || { echo "$o failed"; grep -m5 -B2 -A5 error "$OUTDIR/$o.log"; rm -f "$OUTDIR/$o.o"; }
  done
  $NVCC -gencode=arch=compute_90a,code=sm_90a "$OUTDIR"/variants_*.o "$OUTDIR/harness.o" -o "$BIN" || return 1
  for g in $GROUPS_TO_BUILD; do
    grep -E "registers|spill" "$OUTDIR/variants_$g.log" | sed "s/^/[g$g] /"
  done
}

check() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in bf16_d128_nc_ovl bf16_d128_c_ovl bf16_d128_nc_seq bf16_d128_c_seq; do
    for s in "1 1" "17 17" "127 127" "128 128" "1000 1000" "4096 4096" "17 1000" "1000 17" "128 4096" "4096 127" "1 4096" "4096 1"; do
      run $v 1 2 $s
    done
    run $v 2 3 1000 1000 -0.125
    run $v 2 3 127 300 0
  done
  for v in bf16_d128_nc_ovl_persist bf16_d128_c_ovl_persist fp16_d128_nc_ovl fp16_d128_c_ovl \
           bf16_d64_nc_ovl bf16_d64_c_ovl bf16_d256_nc_ovl bf16_d256_c_ovl; do
    for s in "1 1" "17 1000" "1000 17" "127 128" "4096 4096"; do run $v 1 2 $s; done
    run $v 2 3 1000 1000 -0.125
  done
  # B*H > 65535 folded into the 1-D grid.
  run bf16_d128_nc_ovl 1 70000 17 17
  echo "check failures: $fails"
}

timing() {
  for v in bf16_d128_nc_ovl bf16_d128_nc_seq bf16_d128_nc_ovl_persist; do
    $T "$BIN" $v 4 16 4096 4096 default 20; $T "$BIN" $v 2 16 8192 8192 default 20
  done
  for v in bf16_d128_c_ovl bf16_d128_c_seq bf16_d128_c_ovl_persist; do
    $T "$BIN" $v 4 16 4096 4096 default 20; $T "$BIN" $v 2 16 8192 8192 default 20
  done
  for v in fp16_d128_nc_ovl fp16_d128_c_ovl bf16_d64_nc_ovl bf16_d64_c_ovl bf16_d256_nc_ovl bf16_d256_c_ovl; do
    $T "$BIN" $v 4 16 4096 4096 default 20
  done
}

NEW="bf16_d128_nc_pp bf16_d128_c_pp bf16_d128_nc_n176_pp bf16_d128_nc_n176_ovl bf16_d64_nc_pp bf16_d64_c_pp"

check_new() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in $NEW; do
    for s in "1 1" "17 17" "127 127" "128 128" "1000 1000" "4096 4096" "17 1000" "1000 17" "128 4096" "4096 127" "1 4096" "4096 1"; do
      run $v 1 2 $s
    done
    run $v 2 3 1000 1000 -0.125
    run $v 2 3 127 300 0
    run $v 3 5 777 1333
  done
  echo "check_new failures: $fails"
}

timing2() {
  for v in bf16_d128_nc_ovl bf16_d128_nc_pp bf16_d128_nc_n176_pp bf16_d128_nc_n176_ovl; do
    $T "$BIN" $v 4 16 4096 4096 default 20; $T "$BIN" $v 2 16 8192 8192 default 20
  done
  for v in bf16_d128_c_ovl bf16_d128_c_pp; do
    $T "$BIN" $v 4 16 4096 4096 default 20; $T "$BIN" $v 2 16 8192 8192 default 20
  done
  for v in bf16_d64_nc_ovl bf16_d64_nc_pp bf16_d64_c_ovl bf16_d64_c_pp; do
    $T "$BIN" $v 4 16 4096 4096 default 20
  done
}

NEW3="bf16_d64_nc_m128n192_pp bf16_d64_nc_m128n128_ovl bf16_d64_c_m128n128_ovl"

check3() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in $NEW3; do
    for s in "1 1" "17 17" "127 127" "128 128" "1000 1000" "4096 4096" "17 1000" "1000 17" "128 4096" "4096 127" "1 4096" "4096 1"; do
      run $v 1 2 $s
    done
    run $v 2 3 1000 1000 -0.125
    run $v 2 3 127 300 0
    run $v 3 5 777 1333
  done
  echo "check3 failures: $fails"
}

# Best variant per shape, 50 timed iterations each (run 3).
timing3() {
  for v in bf16_d128_nc_pp bf16_d128_nc_n176_pp; do
    $T "$BIN" $v 4 16 4096 4096 default 50; $T "$BIN" $v 2 16 8192 8192 default 50
  done
  for v in bf16_d128_c_ovl; do
    $T "$BIN" $v 4 16 4096 4096 default 50; $T "$BIN" $v 2 16 8192 8192 default 50
  done
  for v in bf16_d64_nc_ovl bf16_d64_nc_m128n192_pp bf16_d64_nc_m128n128_ovl bf16_d64_c_ovl bf16_d64_c_m128n128_ovl \
           bf16_d256_nc_ovl bf16_d256_c_ovl; do
    $T "$BIN" $v 4 16 4096 4096 default 50
  done
}

# Run 4: persistent (separate O staging, dynamic causal scheduler) vs one CTA per tile.
P4="bf16_d128_nc_pp_persist bf16_d128_nc_ovl_persist bf16_d128_c_ovl_persist bf16_d64_nc_ovl_persist
    bf16_d64_nc_m128n128_ovl_persist bf16_d64_c_ovl_persist bf16_d64_c_m128n128_ovl_persist bf16_d256_nc_ovl_persist
    bf16_d256_c_ovl_persist bf16_d64_nc_m128n192_pp_persist"

check4() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in $P4; do
    for s in "1 1" "17 17" "127 127" "128 128" "1000 1000" "17 1000" "1000 17" "128 4096" "4096 127" "1 4096" "4096 1"; do
      run $v 1 2 $s
    done
    run $v 2 3 1000 1000 -0.125
    run $v 2 3 127 300 0
    run $v 3 5 777 1333
    run $v 7 40 300 300   # many tiles per CTA (280 x 3 tiles on 132 SMs)
  done
  run bf16_d128_c_ovl_persist 1 70000 17 17  # B*H > 65535, one tile each
  echo "check4 failures: $fails"
}

timing4() {
  local it=30
  for s in 512 1024 2048 4096; do
    local b=$((16384 / s))
    for v in bf16_d128_nc_ovl bf16_d128_nc_ovl_persist bf16_d128_nc_pp bf16_d128_nc_pp_persist bf16_d128_c_ovl bf16_d128_c_ovl_persist; do
      $T "$BIN" $v $b 16 $s $s default $it
    done
    for v in bf16_d64_nc_ovl bf16_d64_nc_ovl_persist bf16_d64_nc_m128n128_ovl bf16_d64_nc_m128n128_ovl_persist \
             bf16_d64_nc_m128n192_pp bf16_d64_nc_m128n192_pp_persist bf16_d64_c_ovl bf16_d64_c_ovl_persist \
             bf16_d64_c_m128n128_ovl bf16_d64_c_m128n128_ovl_persist; do
      $T "$BIN" $v $b 32 $s $s default $it
    done
    for v in bf16_d256_nc_ovl bf16_d256_nc_ovl_persist bf16_d256_c_ovl bf16_d256_c_ovl_persist; do
      $T "$BIN" $v $b 8 $s $s default $it
    done
  done
}

# Run 5: more persistent tiles (groups 18-22) against run 4's best; ncu of the short-sequence kernels.
P5="bf16_d64_nc_m128n128_pp_persist bf16_d64_c_m128n128_pp_persist bf16_d64_c_m128n64_ovl_persist
    bf16_d64_c_m128n96_ovl_persist bf16_d64_nc_m64n128_ovl_persist bf16_d64_c_m64n128_ovl_persist
    bf16_d64_nc_m128n176_ovl_persist bf16_d64_nc_m128n96_ovl_persist bf16_d128_nc_n176_pp_persist
    bf16_d256_nc_n80_ovl_persist bf16_d256_c_n80_ovl_persist"

check5() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in $P5; do
    for s in "1 1" "17 17" "127 128" "1000 1000" "17 1000" "1000 17" "4096 127" "1 4096"; do run $v 1 2 $s; done
    run $v 2 3 1000 1000 -0.125
    run $v 7 40 300 300
  done
  echo "check5 failures: $fails"
}

timing5() {
  local it=30
  for s in 512 1024 2048 4096; do
    local b=$((16384 / s))
    for v in bf16_d64_nc_ovl_persist bf16_d64_nc_m128n128_ovl_persist bf16_d64_nc_m128n128_pp_persist \
             bf16_d64_nc_m64n128_ovl_persist bf16_d64_nc_m128n176_ovl_persist bf16_d64_nc_m128n96_ovl_persist \
             bf16_d64_c_m128n128_ovl_persist bf16_d64_c_m128n128_pp_persist bf16_d64_c_m128n64_ovl_persist \
             bf16_d64_c_m128n96_ovl_persist bf16_d64_c_m64n128_ovl_persist; do
      $T "$BIN" $v $b 32 $s $s default $it
    done
  done
  for s in 4096 8192 16384; do
    local b=$((16384 / s))
    for v in bf16_d128_nc_pp_persist bf16_d128_nc_n176_pp_persist; do $T "$BIN" $v $b 16 $s $s default $it; done
    for v in bf16_d256_nc_ovl_persist bf16_d256_nc_n80_ovl_persist bf16_d256_c_ovl_persist bf16_d256_c_n80_ovl_persist; do
      $T "$BIN" $v $b 8 $s $s default $it
    done
  done
}

# Nsight Compute: one launch each (iters 0 = the correctness launch only), clocks left alone.
ncu5() {
  local N="ncu --clock-control none -k regex:kernel_entry -c 1 --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy"
  $N "$BIN" bf16_d128_nc_pp 32 16 512 512
  $N "$BIN" bf16_d128_nc_pp_persist 32 16 512 512
  $N "$BIN" bf16_d64_c_m128n128_ovl_persist 32 32 512 512
  $N "$BIN" bf16_d64_nc_m128n128_ovl_persist 32 32 512 512
  $N "$BIN" bf16_d128_nc_pp_persist 1 16 16384 16384
}

# Run 6: grouped-query attention (FC_HKV) and bottom-right causal alignment (FC_ALIGN=br).
check6() {
  local fails=0
  run() { $T "$BIN" "$@" || { echo "  (rc=$?)"; fails=$((fails + 1)); }; }
  for v in bf16_d128_c_ovl bf16_d128_c_ovl_persist bf16_d128_nc_pp_persist bf16_d256_c_ovl_persist bf16_d64_c_ovl_persist \
           bf16_d64_c_m128n128_ovl_persist bf16_d256_nc_n80_ovl_persist; do
    for s in "100 1000" "1 4096" "128 640" "1000 100" "777 300" "4096 1" "300 300" "17 1000"; do
      FC_ALIGN=br run $v 2 8 $s
    done
    for h in 2 1; do
      FC_HKV=$h run $v 2 8 1000 1000
      FC_HKV=$h FC_ALIGN=br run $v 2 8 333 1000
      FC_HKV=$h FC_ALIGN=br run $v 3 8 1000 333
    done
    FC_HKV=4 run $v 7 40 300 300
  done
  echo "check6 failures: $fails"
}

# GQA cost: 32 query heads on 8 K/V heads against MHA of the same work (Llama-style, D128, S=4096).
timing6() {
  for v in bf16_d128_c_ovl_persist bf16_d128_nc_pp_persist; do
    $T "$BIN" $v 2 32 4096 4096 default 30
    FC_HKV=8 $T "$BIN" $v 2 32 4096 4096 default 30
  done
  FC_ALIGN=br $T "$BIN" bf16_d128_c_ovl_persist 2 32 1024 4096 default 30
}

# Run 7: the 2-slot Q ring (next tile's Q loads during this tile) against one Q buffer (_q1).
timing7() {
  local it=30
  for s in 512 1024 2048 4096; do
    local b=$((16384 / s))
    for r in 1 2; do
      for v in bf16_d128_nc_pp_persist bf16_d128_c_ovl_persist; do
        $T "$BIN" ${v}_q1 $b 16 $s $s default $it; $T "$BIN" $v $b 16 $s $s default $it
      done
      for v in bf16_d64_nc_ovl_persist bf16_d64_nc_m128n128_ovl_persist bf16_d64_c_m128n128_ovl_persist bf16_d64_c_ovl_persist; do
        $T "$BIN" ${v}_q1 $b 32 $s $s default $it; $T "$BIN" $v $b 32 $s $s default $it
      done
    done
  done
}

case "${1:-all}" in
  time7) timing7 ;;
  check6) check6 ;;
  time6) timing6 ;;
  check5) check5 ;;
  time5) timing5 ;;
  ncu5) ncu5 ;;
  check4) check4 ;;
  time4) timing4 ;;
  check3) check3 ;;
  quick3) for v in $NEW3; do for s in "1000 1000" "17 1000"; do $T "$BIN" $v 1 2 $s || echo "  (rc=$?)"; done; done ;;
  time3) timing3 ;;
  quick2) for v in $NEW; do for s in "1000 1000" "17 1000"; do $T "$BIN" $v 1 2 $s || echo "  (rc=$?)"; done; done ;;
  check_new) check_new ;;
  time2) timing2 ;;
  build) build ;;
  check) check ;;
  time) timing ;;
  all) build && timing && check ;;
  quick) for v in bf16_d128_nc_ovl bf16_d128_c_ovl bf16_d128_nc_seq; do for s in "1000 1000" "17 1000" "4096 4096"; do $T "$BIN" $v 1 2 $s || echo "  (rc=$?)"; done; done ;;
esac
