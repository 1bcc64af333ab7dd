#!/usr/bin/env bash
# Is a short call's key loop bound by its loads? Needs commit 84b9b80 (the stages axis with 4).
# Kernel time (CUPTI) of the seed's tile (fp16 D64 64x128, one CTA per tile) with 2, 3 and 4 ring slots (4: all of a 512-key row's K/V in flight at
# once) and 64-key tiles, on one CTA with 1 / 4 / 16 key tiles, and at 512 keys on 8 CTAs that
# share one head's K/V, 8 and 64 CTAs that each read their own head, and the seed's 64 CTAs.
# Writes $OUT/load_bound.tgz.
set -u
cd "$(dirname "$0")/../../.."
D=/tmp/load_bound; rm -rf $D; mkdir -p $D
only=""
for s in 2 3 4; do only="$only --only fc_sm90_fp16_d64_full_m64_n128_s${s}_sch1_p0_kv1"; done
only="$only --only fc_sm90_fp16_d64_full_m64_n64_s4_sch1_p0_kv1"
OUT=$D/run BUILD_ARGS="$only" bash benchmarks/device_run.sh build > $D/build.txt 2>&1; tail -3 $D/build.txt
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests FLASHCORE_CACHE_DIR=$PWD/build/cache
python3 benchmarks/experiments/small/kernel_times.py --dtype fp16 --shape 1,1,64,128,64 --shape 1,1,64,512,64 \
  --shape 1,1,64,2048,64 --shape 1,1,512,512,64 --shape 1,8,64,512,64 --shape 1,64,64,512,64 --shape 1,8,512,64 \
  --shape 1,8,1024,64 --json $D/kernel_times.json 2>&1 | grep -v -i warn | tee $D/kernel_times.txt
tar czf ${OUT:-/tmp}/load_bound.tgz -C $D .
