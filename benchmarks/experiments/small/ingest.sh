#!/usr/bin/env bash
# Build and run ingest.cu (how fast one SM lands K/V bytes in shared memory, by load method).
# Writes $OUT/ingest-<commit>.txt. Arguments: the sections to run (once probe ring; default all).
set -eu
cd "$(dirname "$0")"
nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/ingest ingest.cu
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader
/tmp/ingest "$@" | tee "${OUT:-/tmp}/ingest-$(cat ../../../.commit 2>/dev/null || echo dirty).txt"
