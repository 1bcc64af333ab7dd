# The steps the tile A/B scripts share (seq_wide.sh, d64_short_tiles.sh, wk1_d256_n80.sh, seq_pingpong.sh),
# sourced after setting TAG: the repository root as working directory, the installed package
# (device_run.sh's /tmp/site) and a build cache of the script's own; then build the variants, run each new tile once
# at a grid cell in a watched child (a tile that hangs would take pytest and the A/B with it, and a hung call returns
# no signal: NOTES.md 2026-11-29 16:59-), their GPU tests, and the interleaved A/B against SDPA (two_ctas_ab.py).
# Files go to $OUT/${TAG}_probe.txt, _tests.log, _ab.json. TEST_S, AB_S and ROUNDS override the scripts' defaults.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=/tmp/fc_$TAG PYTHONUNBUFFERED=1
# The commit the results name (benchmarks/common.py git_commit): .commit, as device_run.sh sets it; the GPU
# machine's copy of .git may be stale.
export FLASHCORE_COMMIT=${FLASHCORE_COMMIT:-$(cat .commit 2>/dev/null || echo unknown)}

ab_build() {  # SECONDS TAIL_LINES VARIANT...
  local limit=$1 lines=$2; shift 2
  ( time timeout "$limit" python3 -m flashcore_cutlass build -q $(printf -- '--only %s ' "$@") ) 2>&1 | tail -"$lines"
}

ab_probe() {  # SECONDS VARIANT@B,H,S...: stops the script unless every case finished and matched SDPA
  local limit=$1; shift
  timeout "$limit" python3 benchmarks/experiments/sm90/kv_multicast_probe.py --timeout 25 --reps 20 "$@" 2>&1 \
    | tee "$OUT/${TAG}_probe.txt"
  [ "$(grep -c 'ok max' "$OUT/${TAG}_probe.txt")" = $# ] || { echo "a tile hung or failed: no tests, no A/B"; exit 1; }
}

ab_tests() {  # SECONDS TAIL_LINES PYTEST_ARGS...
  local limit=$1 lines=$2; shift 2
  timeout --signal=INT --kill-after=15 "${TEST_S:-$limit}" python3 -m pytest -q "$@" 2>&1 \
    | tee "$OUT/${TAG}_tests.log" | tail -"$lines"
}

ab_cell() {  # D S full|causal TILE... -> D,S,mask,TILE,... (one --cell of two_ctas_ab.py)
  local IFS=,
  echo "$*"
}

ab_run() {  # SECONDS ROUNDS TAIL_LINES --cell C [--cell C ...]
  local limit=$1 rounds=$2 lines=$3; shift 3
  timeout "${AB_S:-$limit}" python3 benchmarks/experiments/sm90/two_ctas_ab.py --rounds "${ROUNDS:-$rounds}" \
    --json "$OUT/${TAG}_ab.json" "$@" 2>&1 | tail -"$lines"
}
