#!/usr/bin/env bash
# One call on the lent Hopper GPU (H100/H200): install, build, test, tune, benchmark; logs and JSON under $OUT.
#   bash benchmarks/device_run.sh [build] [test] [tune] [bench] [small] [decode] [models] [bounds] [capbound] [ladder] [timing] [sanitize] [buildcost]
#   (default: build test tune bench ladder); BUILD_ARGS/TEST_ARGS/TUNE_ARGS/BENCH_ARGS/SMALL_ARGS/SANITIZE_ARGS
#   pass options on (TUNE_ARGS2, TUNE_ARGS3: more tune runs); KEEP_BUILD=1 returns the built extension (see the end).
# Wheels missing on the device (nvidia-cutlass, tqdm) travel in .whl/ (see benchmarks/NOTES.md).
set -uo pipefail
cd "$(dirname "$0")/.."
# A device call is killed at its limit (600 s at most) and then returns nothing, not even the logs. So every stage
# runs under `timeout` to DEADLINE_S seconds after this script started (default 540: the end below, which packs
# the logs and results into $OUT, then still fits a 600 s call); a stage cut short is interrupted with SIGINT
# (pytest then prints its summary) and later stages are skipped. Set DEADLINE_S to the call's limit minus ~60 s.
START_S=$(date +%s)
DEADLINE_S=${DEADLINE_S:-540}
T() {  # T CMD...: CMD under the time left before the deadline
  local left=$(( DEADLINE_S - ($(date +%s) - START_S) ))
  if [ "$left" -le 5 ]; then echo "skipped (DEADLINE_S=$DEADLINE_S reached): $*" >&2; return 124; fi
  timeout --signal=INT --kill-after=15 "$left" "$@"
  local rc=$?
  [ "$rc" = 124 ] && echo "cut at the deadline (DEADLINE_S=$DEADLINE_S): $*" >&2
  return "$rc"
}
OUT=${OUT:-/tmp/flashcore_out}
LOG=/tmp/flashcore_logs  # everything goes here; $OUT gets a tarball and the JSON (8 files at most)
rm -rf "$LOG" && mkdir -p "$LOG" "$OUT"
STAGES=${*:-build test tune bench ladder}
export PYTHONUNBUFFERED=1
export FLASHCORE_CACHE_DIR=${FLASHCORE_CACHE_DIR:-$PWD/build/cache}  # kept while the machine stays warm
export FLASHCORE_COMMIT=$(cat .commit 2>/dev/null || echo unknown)

if ls .whl/*.whl >/dev/null 2>&1; then
  [ -d /tmp/site/cutlass_library ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD:$PWD/tests
fi
# transformers and its dependencies (the patch_sdpa model test) from .whl/extra, into a
# directory at the end of PYTHONPATH (pure-Python dependencies there may shadow older copies in
# the image; numpy is installed only if the image lacks it).
if ls .whl/extra/*.whl >/dev/null 2>&1 && ! python3 -c "import transformers" 2>/dev/null; then
  extra=$(ls .whl/extra/*.whl | grep -v numpy)
  python3 -c "import numpy" 2>/dev/null || extra="$extra $(ls .whl/extra/numpy*.whl)"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site_extra $extra >"$LOG/extra.log" 2>&1 \
    && export PYTHONPATH=${PYTHONPATH:-}:/tmp/site_extra || echo "transformers wheels did not install (see extra.log)"
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$LOG/install.log" 2>&1 || { cat "$LOG/install.log"; exit 1; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$LOG/gpu.txt"
echo "nproc $(nproc)"

for stage in $STAGES; do
  echo "=== $stage ($(date +%T))"
  case $stage in
    build)  ( time T python3 -m flashcore_cutlass build -q ${BUILD_ARGS:-} ) 2>&1 | tee "$LOG/build.log" | tail -30
            cp "$FLASHCORE_CACHE_DIR/build/manifest.json" "$LOG/" 2>/dev/null ;;
    test)   T python3 -m pytest -q -rs ${TEST_ARGS:-tests/flashcore_cutlass/test_kernels_gpu.py tests/flashcore_cutlass/test_api_gpu.py} 2>&1 | tee "$LOG/tests.log" | tail -25 ;;
    tune)   ( time T python3 -m flashcore_cutlass tune -q ${TUNE_ARGS:-} ) 2>&1 | tee "$LOG/tune.log" | tail -60
            # TUNE_ARGS2, TUNE_ARGS3: more tunes in the same stage (e.g. shapes of another head dim: --head-dim is one per run).
            for more in "${TUNE_ARGS2:-}" "${TUNE_ARGS3:-}"; do
              [ -n "$more" ] && { ( time T python3 -m flashcore_cutlass tune -q $more ) 2>&1 | tee -a "$LOG/tune.log" | tail -60; }
            done ;;
    bench)  T python3 benchmarks/bench_sdpa.py --json "$LOG/bench.json" ${BENCH_ARGS:-} 2>"$LOG/bench.err" | tee "$LOG/bench.txt" ;;
    decode) T python3 benchmarks/bench_decode.py --json "$LOG/bench_decode.json" ${DECODE_ARGS:-} 2>"$LOG/decode.err" | tee "$LOG/decode.txt" ;;
    models) T python3 benchmarks/bench_models.py --json "$LOG/bench_models.json" ${MODELS_ARGS:-} 2>"$LOG/models.err" | tee "$LOG/models.txt" ;;
    small)  T python3 benchmarks/bench_small.py --json "$LOG/bench_small.json" ${SMALL_ARGS:---long-keys} 2>"$LOG/small.err" | tee "$LOG/small.txt" ;;
    bounds) T python3 benchmarks/target_bounds.py --json "$LOG/target_bounds.json" ${BOUNDS_ARGS:-} 2>"$LOG/bounds.err" | tee "$LOG/bounds.txt" ;;
    capbound) T python3 benchmarks/cap_bound.py --json "$LOG/cap_bound.json" ${CAPBOUND_ARGS:-} 2>"$LOG/capbound.err" | tee "$LOG/capbound.txt" ;;
    timing) T python3 benchmarks/grid_timing_methods.py --json "$LOG/grid_timing.json" ${TIMING_ARGS:-} 2>"$LOG/timing.err" | tee "$LOG/timing.txt" ;;
    ladder) T python3 benchmarks/ladder.py --json "$LOG/ladder.json" 2>"$LOG/ladder.err" | tee "$LOG/ladder.txt" ;;
    sanitize) T bash benchmarks/sanitize.sh ${SANITIZE_ARGS:-} 2>&1 | tee "$LOG/sanitize.log" | tail -30 ;;
    doctor) T python3 -m flashcore_cutlass doctor 2>&1 | tee "$LOG/doctor.txt" ;;
    buildcost)  # seconds per variant on one core: one variant per family, one nvcc at a time
            for v in fc_scalar_bf16_d128_full_m16_w4 fc_mma_bf16_d128_full_m64_n64_w4 fc_pipelined_bf16_d128_full_m128_n64_w4_s2_lean0 fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1 fc_sm90_bf16_d256_causal_m128_n80_s2_sch1_p1_kv1; do
              rm -rf /tmp/onecore; s=$(date +%s.%N)
              taskset -c 0 python3 -m flashcore_cutlass build -q --no-link -j 1 --build-dir /tmp/onecore --only $v >/dev/null 2>&1
              e=$(date +%s.%N); echo "$v $(awk "BEGIN{printf \"%.1f\", $e-$s}") s on one core"
            done 2>&1 | tee "$LOG/buildcost.txt" ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
python3 -m flashcore_cutlass table --winners > "$LOG/table.txt" 2>&1 || true
python3 -m flashcore_cutlass table --json > "$LOG/table.json" 2>/dev/null || true
# The winners in the shipped format, as tuned_<model>.json (tuned_h100.json, tuned_h200.json): copy it to
# flashcore_cutlass/data/ to ship them. The package's file for this GPU is copied in first and the run's winners
# merged into it (--merge keeps its rows of other keys that are current here: after `tune --stale-only` the result
# is the whole table to ship; --keep-stale keeps the stale ones too, so that a tune the deadline cut resumes from
# the file in the next call, and the package's test of its table fails until none is left); without tuned rows no
# file is left.
# Only after a tune stage: a call without one has no tuned rows (a fresh cache) and nothing to export.
case " $STAGES " in *" tune "*)
  ship=$(python3 -c "import torch; from flashcore_cutlass.shipped import file_name_for; print(file_name_for(torch.cuda.get_device_name()))" 2>/dev/null)
  [ -n "$ship" ] && [ -f "flashcore_cutlass/data/$ship" ] && cp "flashcore_cutlass/data/$ship" "$LOG/$ship"
  python3 -m flashcore_cutlass table --export-shipped "$LOG" --merge --keep-stale || { [ -n "$ship" ] && rm -f "$LOG/$ship"; } ;;
esac
cp "$FLASHCORE_CACHE_DIR/build/obj/"*.log "$LOG/" 2>/dev/null
# What the benchmarks saved under benchmarks/results in this call (their named JSON, bench_sdpa's plot).
mkdir -p "$LOG/results" && find benchmarks/results -newer "$LOG/gpu.txt" -type f -exec cp {} "$LOG/results/" \; 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$LOG" . && cp "$LOG"/*.json "$OUT/" 2>/dev/null
# KEEP_BUILD=1: the extension and its manifest come back too (a later call carries them in
# build/cache/build/ and skips the build stage; same torch there, or the runtime calls it stale).
if [ "${KEEP_BUILD:-0}" = 1 ]; then
  cp "$FLASHCORE_CACHE_DIR/build/flashcore_ext.so" "$OUT/" && cp "$FLASHCORE_CACHE_DIR/build/manifest.json" "$OUT/build_manifest.json"
fi
ls "$OUT"