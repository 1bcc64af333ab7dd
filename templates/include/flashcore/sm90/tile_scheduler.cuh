// Tile schedulers: which (m_block, head, batch) work tile a CTA processes.
// The linear tile index decodes with m_block fastest (CTAs running together share K/V of one
// head in L2), then head, then batch. Causal: m_block reversed so the longest tiles go first.
//
// Interface used by the kernel skeleton: initial(), valid(w), and the next tile seen from the
// producer (producer_next, one elected thread) and from the consumers (consumer_next, every
// consumer thread). Static schedulers compute both the same way; the dynamic one lets the
// producer claim tiles from a global counter and hands them to the consumers through smem.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/fast_math.h>
#include "flashcore/api.h"

namespace flashcore::sm90 {

struct WorkTile {
  int m_block, head, batch;
  int linear;     // the linear tile index (>= num_tiles means: no more work)
  int split = 0;  // split-KV: which share of the tile's key tiles this CTA walks (0: all); stream-K: below
};

// Stream-K (stream_k.cuh): a piece of a query tile in WorkTile::split, 1 + 2 b + second, where the
// tile's key tiles [first, first + b) are its first piece and [first + b, end) its second.
CUTE_HOST_DEVICE constexpr int stream_k_piece(int boundary, bool second) { return 1 + 2 * boundary + (second ? 1 : 0); }
CUTE_HOST_DEVICE constexpr int stream_k_boundary(int split) { return (split - 1) >> 1; }
CUTE_HOST_DEVICE constexpr bool stream_k_second(int split) { return ((split - 1) & 1) != 0; }

// Are a call's query tiles whole and equal (no packed sequences, no partial last tile)? The host
// picks a scheduler's mode by it (FwdKernel::uneven_tiles, stream_k_call) and the device again
// (StreamKTileScheduler): one predicate for both sides.
template <int kBlockM>
CUTE_HOST_DEVICE bool even_tiles(SeqLayout const& s) {
  return s.cu_seqlens_q == nullptr && s.seqlen_q % kBlockM == 0;
}

// The tile grid; m_div / head_div divide by m_tiles / heads with a multiply-high and a shift
// (their constants made on the host), where a division by a runtime int took ~50 instructions,
// two of them a dependent chain before every tile's first load and every consumer's next tile.
struct TileGeometry {
  int m_tiles, heads, num_tiles;
  cutlass::FastDivmod m_div, head_div;
  CUTE_HOST_DEVICE TileGeometry(int m_tiles_, int heads_, int batch)
      : m_tiles(m_tiles_), heads(heads_), num_tiles(m_tiles_ * heads_ * batch), m_div(m_tiles_), head_div(heads_) {}
};

template <int kBlockM>
CUTE_HOST_DEVICE TileGeometry make_tile_geometry(FwdParams const& p) {
  return TileGeometry((p.seqlen_q + kBlockM - 1) / kBlockM, p.heads, p.batch);
}

template <bool kReverseM>
CUTE_DEVICE WorkTile decode_tile(TileGeometry const& g, int linear) {
  WorkTile w;
  w.linear = linear;
  int bh, m;
  g.m_div(bh, m, linear);
  w.m_block = kReverseM ? g.m_tiles - 1 - m : m;
  g.head_div(w.batch, w.head, bh);
  w.split = 0;
  return w;
}

// One CTA per tile; grid.x = m_tiles * heads * batch (1-D, so B*H > 65535 is fine).
template <bool kReverseM>
struct PlainTileScheduler {
  static constexpr bool kPersistent = false;
  TileGeometry g;
  CUTE_DEVICE PlainTileScheduler(TileGeometry const& geo, void* /*workspace*/) : g(geo) {}
  static dim3 grid(TileGeometry const& g, int /*num_sms*/) { return dim3(unsigned(g.num_tiles), 1, 1); }
  CUTE_DEVICE WorkTile initial() const { return decode_tile<kReverseM>(g, int(blockIdx.x)); }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < g.num_tiles; }
  CUTE_DEVICE WorkTile next(WorkTile const& w) const { WorkTile n = w; n.linear = g.num_tiles; return n; }
  static size_t workspace_bytes(TileGeometry const&) { return 0; }
  template <class SS> CUTE_DEVICE static void init(SS&) {}
  template <class SS> CUTE_DEVICE WorkTile producer_next(SS&, WorkTile const& w, int) const { return next(w); }
  template <class SS> CUTE_DEVICE WorkTile consumer_next(SS&, WorkTile const& w, int) const { return next(w); }
};

// Static persistent: grid = min(tiles, SMs); CTA b takes tiles b, b + grid, b + 2 grid, ...
template <bool kReverseM>
struct StaticPersistentTileScheduler {
  static constexpr bool kPersistent = true;
  TileGeometry g;
  CUTE_DEVICE StaticPersistentTileScheduler(TileGeometry const& geo, void* /*workspace*/) : g(geo) {}
  static dim3 grid(TileGeometry const& g, int num_sms) {
    return dim3(unsigned(g.num_tiles < num_sms ? g.num_tiles : num_sms), 1, 1);
  }
  CUTE_DEVICE WorkTile initial() const { return decode_tile<kReverseM>(g, int(blockIdx.x)); }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < g.num_tiles; }
  CUTE_DEVICE WorkTile next(WorkTile const& w) const {
    int l = w.linear + int(gridDim.x);
    return l < g.num_tiles ? decode_tile<kReverseM>(g, l) : WorkTile{0, 0, 0, g.num_tiles};
  }
  static size_t workspace_bytes(TileGeometry const&) { return 0; }
  template <class SS> CUTE_DEVICE static void init(SS&) {}
  template <class SS> CUTE_DEVICE WorkTile producer_next(SS&, WorkTile const& w, int) const { return next(w); }
  template <class SS> CUTE_DEVICE WorkTile consumer_next(SS&, WorkTile const& w, int) const { return next(w); }
};

// Dynamic persistent (causal): grid = min(tiles, SMs); CTA b starts with tile b, then the
// producer claims the next tile from a global counter (workspace, zeroed at launch) as soon as it has
// issued the loads of its current one, so an SM that drew short tiles takes more of them (the
// longest-first order makes this LPT-like). The claimed index travels to the consumers through
// a 2-slot smem ring guarded by mbarriers: full (1 producer arrival), empty (one per consumer warp).
// kStaticWithoutCounter: a call given no workspace (the host gives none where every tile costs the
// same, FwdKernel::workspace_bytes) takes its tiles statically, as StaticPersistentTileScheduler:
// no atomics, no hand-off through smem (which cost 1 % at D128 16k, 2026-11-29).
template <bool kReverseM, int kConsumerWarps, bool kStaticWithoutCounter = false>
struct DynamicPersistentTileScheduler {
  static constexpr bool kPersistent = true;
  using FullBar = cutlass::arch::ClusterBarrier;
  using EmptyBar = cutlass::arch::ClusterBarrier;
  TileGeometry g;
  int* counter;
  CUTE_DEVICE DynamicPersistentTileScheduler(TileGeometry const& geo, void* workspace)
      : g(geo), counter(static_cast<int*>(workspace)) {}
  static dim3 grid(TileGeometry const& g, int num_sms) {
    return dim3(unsigned(g.num_tiles < num_sms ? g.num_tiles : num_sms), 1, 1);
  }
  static size_t workspace_bytes(TileGeometry const&) { return sizeof(int); }
  template <class SS>
  CUTE_DEVICE static void init(SS& ss) {
    for (int s = 0; s < 2; ++s) {
      FullBar::init(&ss.sched_full[s], 1);
      EmptyBar::init(&ss.sched_empty[s], kConsumerWarps);
    }
  }
  CUTE_DEVICE WorkTile initial() const { return decode_tile<kReverseM>(g, int(blockIdx.x)); }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < g.num_tiles; }
  CUTE_DEVICE WorkTile decode(int l) const {
    return l < g.num_tiles ? decode_tile<kReverseM>(g, l) : WorkTile{0, 0, 0, g.num_tiles};
  }
  // iter: how many tiles this CTA has processed before w (slot iter % 2, phase (iter / 2) % 2).
  template <class SS>
  CUTE_DEVICE WorkTile producer_next(SS& ss, WorkTile const& w, int iter) const {
    if constexpr (kStaticWithoutCounter) {
      if (counter == nullptr) return decode(w.linear + int(gridDim.x));
    }
    int l = int(gridDim.x) + atomicAdd(counter, 1);
    int const slot = iter & 1;
    EmptyBar::wait(&ss.sched_empty[slot], uint32_t((iter >> 1) & 1) ^ 1);
    ss.next_tile[slot] = l;
    FullBar::arrive(&ss.sched_full[slot]);  // release: the consumers' wait makes the store visible
    return decode(l);
  }
  template <class SS>
  CUTE_DEVICE WorkTile consumer_next(SS& ss, WorkTile const& w, int iter) const {
    if constexpr (kStaticWithoutCounter) {
      if (counter == nullptr) return decode(w.linear + int(gridDim.x));
    }
    int const slot = iter & 1;
    FullBar::wait(&ss.sched_full[slot], uint32_t((iter >> 1) & 1));
    int l = ss.next_tile[slot];
    __syncwarp();
    if (cute::elect_one_sync()) EmptyBar::arrive(&ss.sched_empty[slot]);
    return decode(l);
  }
};

// Split-KV: kSplits CTAs, one thread-block cluster, share each query tile; CTA rank r of the
// cluster walks the r-th share of the tile's key tiles (the mainloop's key_tiles) and the
// cluster combines the partial results through distributed shared memory (EpilogueSplitCombine).
// For problems with fewer tiles than SMs: kSplits times the CTAs, each with 1/kSplits of the
// serial key loop. grid.x = num_tiles * kSplits, the cluster's CTAs adjacent in x.
template <bool kReverseM, int kSplits>
struct SplitKvTileScheduler : PlainTileScheduler<kReverseM> {
  static_assert(kSplits >= 2 && kSplits <= 8, "a portable cluster holds at most 8 CTAs");
  using PlainTileScheduler<kReverseM>::PlainTileScheduler;
  static dim3 grid(TileGeometry const& g, int /*num_sms*/) { return dim3(unsigned(g.num_tiles * kSplits), 1, 1); }
  static dim3 cluster() { return dim3(unsigned(kSplits), 1, 1); }
  CUTE_DEVICE WorkTile initial() const {
    WorkTile w = decode_tile<kReverseM>(this->g, int(blockIdx.x) / kSplits);
    w.split = int(blockIdx.x) % kSplits;  // = the CTA's rank in its cluster
    return w;
  }
};

// Split-KV without a cluster: kSplits CTAs per query tile, adjacent in x, each walking its share
// of the tile's key tiles; they combine through global memory (EpilogueSplitGlobal), so any
// split count works and the CTAs need not be co-scheduled.
template <bool kReverseM, int kSplits>
struct SplitKvGlobalTileScheduler : PlainTileScheduler<kReverseM> {
  static_assert(kSplits >= 2);
  using PlainTileScheduler<kReverseM>::PlainTileScheduler;
  static dim3 grid(TileGeometry const& g, int /*num_sms*/) { return dim3(unsigned(g.num_tiles * kSplits), 1, 1); }
  CUTE_DEVICE WorkTile initial() const {
    WorkTile w = decode_tile<kReverseM>(this->g, int(blockIdx.x) / kSplits);
    w.split = int(blockIdx.x) % kSplits;
    return w;
  }
};

}  // namespace flashcore::sm90
