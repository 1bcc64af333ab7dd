#!/usr/bin/env bash
# Build trace_tiles (hooked and plain builds of trace_variants.cu) and run the cases.
#   trace.sh build | run | all     Env: OUTDIR (default /tmp/fc_trace), NVCC, CUTLASS_INC, CASES.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
NVCC=${NVCC:-nvcc}
OUTDIR=${OUTDIR:-/tmp/fc_trace}
mkdir -p "$OUTDIR"
FLAGS="-std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --use_fast_math -DNDEBUG --expt-relaxed-constexpr
       -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -Xptxas=-v"
BIN="$OUTDIR/trace_tiles"
CASES=${CASES:-"d64_nc_m192 32 32 512
d64_nc_m192 1 32 16384
d64_c_m128_pp 32 32 512
d64_c_m128_pp 4 32 4096
d128_nc_pp 32 16 512
d128_nc_pp 1 16 16384
d256_c_n64 32 8 512
d256_c_n64 4 8 4096"}

build() {
  if [ -z "${CUTLASS_INC:-}" ]; then
    CUTLASS_INC=$(python3 -c "import cutlass_library,os;print(os.path.join(cutlass_library.source_path,'include'))")
  fi
  python3 "$HERE/trace_patch.py" "$ROOT/templates/include" "$OUTDIR/include"
  local pids=()
  for g in 0 1 2 3; do
    $NVCC $FLAGS -DFC_TRACE_PATCHED -DFC_TRACE_ON=1 -I"$OUTDIR/include" -I"$CUTLASS_INC" -DFC_GROUP=$g \
      -c "$HERE/trace_variants.cu" -o "$OUTDIR/traced_$g.o" > "$OUTDIR/traced_$g.log" 2>&1 & pids+=($!)
    $NVCC $FLAGS -DFC_SUFFIX=_base -I"$ROOT/templates/include" -I"$CUTLASS_INC" -DFC_GROUP=$g \
      -c "$HERE/trace_variants.cu" -o "$OUTDIR/base_$g.o" > "$OUTDIR/base_$g.log" 2>&1 & pids+=($!)
    if [ "${JOBS:-16}" -le 2 ]; then for pid in "${pids[@]}"; do wait "$pid"; done; pids=(); fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  $NVCC -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/templates/include" -I"$CUTLASS_INC" \
    -c "$HERE/trace_tiles.cu" -o "$OUTDIR/trace_tiles.o"
  $NVCC -gencode=arch=compute_90a,code=sm_90a "$OUTDIR"/traced_*.o "$OUTDIR"/base_*.o "$OUTDIR/trace_tiles.o" -o "$BIN"
  grep -h -E "registers|spill" "$OUTDIR"/traced_*.log "$OUTDIR"/base_*.log | grep -v "0 bytes spill" | sort | uniq -c | head -20 || true
}

run() {
  echo "$CASES" | while read -r name b h s; do
    [ -n "$name" ] && timeout 60 "$BIN" "$name" "$b" "$h" "$s" "${WARMUP_MS:-300}"
  done
}

case "${1:-all}" in
  build) build ;;
  run) run ;;
  all) build && run ;;
esac
