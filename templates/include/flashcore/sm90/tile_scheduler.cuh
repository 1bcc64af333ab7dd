// Tile schedulers: which (m_block, head, batch) work tile a CTA processes.
// The linear tile index decodes with m_block fastest (CTAs running together share K/V of one
// head in L2), then head, then batch. Causal: m_block reversed so the longest tiles go first.
#pragma once

#include <cute/tensor.hpp>
#include "flashcore/api.h"

namespace flashcore::sm90 {

struct WorkTile {
  int m_block, head, batch;
  int linear;  // the linear tile index (>= num_tiles means: no more work)
};

struct TileGeometry {
  int m_tiles, heads, num_tiles;
};

template <int kBlockM>
CUTE_HOST_DEVICE TileGeometry make_tile_geometry(FwdParams const& p) {
  TileGeometry g;
  g.m_tiles = (p.seqlen_q + kBlockM - 1) / kBlockM;
  g.heads = p.heads;
  g.num_tiles = g.m_tiles * p.heads * p.batch;
  return g;
}

template <bool kReverseM>
CUTE_DEVICE WorkTile decode_tile(TileGeometry const& g, int linear) {
  WorkTile w;
  w.linear = linear;
  int bh = linear / g.m_tiles;
  int m = linear - bh * g.m_tiles;
  w.m_block = kReverseM ? g.m_tiles - 1 - m : m;
  w.batch = bh / g.heads;
  w.head = bh - w.batch * g.heads;
  return w;
}

// One CTA per tile; grid.x = m_tiles * heads * batch (1-D, so B*H > 65535 is fine).
template <bool kReverseM>
struct PlainTileScheduler {
  static constexpr bool kPersistent = false;
  TileGeometry g;
  CUTE_DEVICE explicit PlainTileScheduler(TileGeometry const& geo) : g(geo) {}
  static dim3 grid(TileGeometry const& g, int /*num_sms*/) { return dim3(unsigned(g.num_tiles), 1, 1); }
  CUTE_DEVICE WorkTile initial() const { return decode_tile<kReverseM>(g, int(blockIdx.x)); }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < g.num_tiles; }
  CUTE_DEVICE WorkTile next(WorkTile const& w) const { WorkTile n = w; n.linear = g.num_tiles; return n; }
};

// Static persistent: grid = min(tiles, SMs); CTA b takes tiles b, b + grid, b + 2 grid, ...
template <bool kReverseM>
struct StaticPersistentTileScheduler {
  static constexpr bool kPersistent = true;
  TileGeometry g;
  CUTE_DEVICE explicit StaticPersistentTileScheduler(TileGeometry const& geo) : g(geo) {}
  static dim3 grid(TileGeometry const& g, int num_sms) {
    return dim3(unsigned(g.num_tiles < num_sms ? g.num_tiles : num_sms), 1, 1);
  }
  CUTE_DEVICE WorkTile initial() const { return decode_tile<kReverseM>(g, int(blockIdx.x)); }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < g.num_tiles; }
  CUTE_DEVICE WorkTile next(WorkTile const& w) const {
    int l = w.linear + int(gridDim.x);
    return l < g.num_tiles ? decode_tile<kReverseM>(g, l) : WorkTile{0, 0, 0, g.num_tiles};
  }
};

}  // namespace flashcore::sm90
