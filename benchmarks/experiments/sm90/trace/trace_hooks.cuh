// Timestamp hooks for trace_tiles.cu (inserted into a copy of the headers by trace_patch.py).
// Buffer layout: [cta][slot][tile][event], slot 0 = producer (and CTA-wide values), 1.. = consumer WGs.
#pragma once
#include <cstdint>

namespace fc_trace {
constexpr int kEvents = 32, kTiles = 64, kSlots = 4;
// In constant memory: a __device__ pointer was re-read from global memory at every stamp (~150
// cycles each, stores in between may alias it).
__constant__ uint64_t* buf;
__device__ __forceinline__ uint64_t now() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%clock64;" : "=l"(t));
  return t;
}
__device__ __forceinline__ uint64_t gtime() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void put(int slot, int tile, int ev, uint64_t v) {
#if FC_TRACE_ON
  if (buf != nullptr && tile < kTiles) buf[((size_t(blockIdx.x) * kSlots + slot) * kTiles + tile) * kEvents + ev] = v;
#endif
}
}  // namespace fc_trace

// In the mainloop's consumer code (wg_leader, wg, tile_iter in scope): a timestamp, a value.
#define FC_T(ev) \
  do { if (wg_leader) fc_trace::put(1 + wg, tile_iter, (ev), fc_trace::now()); } while (0)
#define FC_V(ev, v) \
  do { if (wg_leader) fc_trace::put(1 + wg, tile_iter, (ev), uint64_t(v)); } while (0)
