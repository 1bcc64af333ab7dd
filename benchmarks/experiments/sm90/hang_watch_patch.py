"""A copy of the sources whose sm90 mbarrier waits watch for a hang: a wait not done after ~0.5 s
prints where it waits (header line, CTA, thread, parity) and the last four tiles each role of that
CTA took (linear index, m block, batch, head, key tiles [first, end), tile count), then gives up,
and every other wait of that CTA returns at once, so the kernel ends and the output shows.

  python benchmarks/experiments/sm90/hang_watch_patch.py DEST
  cd /tmp && PYTHONPATH=SHIM:... python -m flashcore_cutlass build --only VARIANT --build-dir ...

DEST gets codegen/, flashcore_cutlass/ and templates/ (build them through a shim directory whose
flashcore_codegen / flashcore_cutlass link to DEST's, as for an old tree: benchmarks/NOTES.md)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SM90 = Path("templates/include/flashcore/sm90")

WATCH = r'''
// ---- hang watch (benchmarks/experiments/sm90/hang_watch_patch.py) ----
static __device__ int g_watch_ring[1024][2][4][8];
static __device__ int g_watch_hung[1024];
CUTE_DEVICE void watch_record(int role, WorkTile const& w, KeyTileRange const& t, int iter) {
  int* r = g_watch_ring[blockIdx.x % 1024][role][iter & 3];
  r[0] = w.linear; r[1] = w.m_block; r[2] = w.batch; r[3] = w.head; r[4] = t.first; r[5] = t.end; r[6] = iter;
  __threadfence_block();
}
CUTE_DEVICE void watch_wait(uint64_t* bar, uint32_t phase, int line) {
  if (cutlass::arch::ClusterBarrier::try_wait(bar, phase)) return;
  long long const t0 = clock64();
  volatile int* hung = &g_watch_hung[blockIdx.x % 1024];
  while (!cutlass::arch::ClusterBarrier::try_wait(bar, phase)) {
    if (*hung) return;
    if (clock64() - t0 > 1000000000LL) {
      if (atomicExch(&g_watch_hung[blockIdx.x % 1024], 1) == 0) {
        printf("HANGWATCH line %d block %d thread %d parity %u\n", line, int(blockIdx.x), int(threadIdx.x), phase);
        for (int role = 0; role < 2; ++role)
          for (int i = 0; i < 4; ++i) {
            volatile int* r = g_watch_ring[blockIdx.x % 1024][role][i];
            printf("  block %d %s slot %d: linear %d m %d batch %d head %d keys [%d,%d) iter %d\n", int(blockIdx.x),
                   role ? "consumer" : "producer", i, r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
          }
      }
      return;
    }
  }
}
'''


def patch(dest: Path) -> None:
    for part in ("codegen", "flashcore_cutlass", "templates"):
        shutil.rmtree(dest / part, ignore_errors=True)
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copytree(ROOT / "flashcore_cutlass/data", dest / "flashcore_cutlass/data")
    wait = re.compile(r"(?:FullBar|EmptyBar)::wait\((&ss\.[a-z_]+(?:\[[^\]]+\])?), ([^;]+)\);")
    for name in ("mainloop.cuh", "tile_scheduler.cuh"):
        path = dest / SM90 / name
        text, n = wait.subn(r"::flashcore::sm90::watch_wait(\1, \2, __LINE__);", path.read_text())
        assert n > 0, name
        if name == "tile_scheduler.cuh":
            anchor = "  int split = 0;  // split-KV: which share of the tile's key tiles this CTA walks (0: all)\n};\n"
            assert text.count(anchor) == 1  # after WorkTile, before the schedulers that wait
            text = text.replace(anchor, anchor + WATCH)
        else:
            line = "KeyTileRange const tiles = key_tiles(p, seq, w);"
            assert text.count(line) == 2
            first = text.index(line) + len(line)
            text = text[:first] + " ::flashcore::sm90::watch_record(0, w, tiles, tile_iter);" + text[first:]
            second = text.index(line, first) + len(line)
            text = text[:second] + " if (tid == 0) ::flashcore::sm90::watch_record(1, w, tiles, tile_iter);" + text[second:]
        path.write_text(text)
        print(f"{name}: {n} waits watched")


if __name__ == "__main__":
    patch(Path(sys.argv[1]).resolve())
