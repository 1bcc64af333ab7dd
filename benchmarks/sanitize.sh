#!/usr/bin/env bash
# compute-sanitizer memcheck/racecheck/synccheck over one built variant per family and mask;
# summary table last, exit status 1 on any error. Arguments: see benchmarks/sanitize.py --help.
#   FLASHCORE_CACHE_DIR=... bash benchmarks/sanitize.sh [--tools memcheck racecheck synccheck] [--one-per-family]
exec "${PYTHON:-python3}" "$(dirname "$0")/sanitize.py" "$@"
