// K/V loads shared by a cluster of two CTAs (kv_cluster = 2): the CTAs of a pair of adjacent query
// tiles of one head (m_block 2i and 2i + 1) read the same K/V tiles, so each CTA's producer loads
// half of every K/V tile and TMA multicasts it into both CTAs' rings: each K/V byte crosses from
// L2 to the SMs once per pair instead of once per tile (FA3 does this for its non-causal D128+
// tiles, hopper/flash_fwd_launch_template.h; here for the 64-row tiles too, whose L2 -> SM traffic
// the short D64 causal cells' profile showed at twice cuDNN's: benchmarks/NOTES.md, 2026-11-28 19:48-).
//
// The two rings must advance together, so both CTAs walk the union of their tiles' key ranges
// (under a causal mask the upper tile has one key tile more, the lower one waits for it and
// releases it unread), and a slot is free only once both CTAs' consumers released it: the empty
// barriers count both CTAs' arrivals. The query tiles pair up when their count per head is even:
// the geometry rounds it up (the extra tile has no rows and only drains), and a persistent grid
// holds whole pairs. A CTA leaves only after its peer (a cluster barrier), so no release lands in
// the shared memory of a CTA that has exited.
#pragma once

#include <cute/arch/cluster_sm90.hpp>

#include "flashcore/api.h"
#include "flashcore/sm90/tile_scheduler.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

template <class Base>
struct KvMulticastTraits : Base {
  static constexpr int kKvCluster = 2;
  static_assert(Base::kSplits == 1 && Base::kKeyWGs == 1 && !Base::kPackGqa,
                "K/V multicast pairs whole query tiles: no split-KV, key-split WGs or GQA packing");
  static_assert(!Base::kOInV, "the peer's V loads would overwrite O staged in this CTA's V ring");
  using TmaK = decltype(make_tma_copy(SM90_TMA_LOAD_MULTICAST{}, typename Base::GmemIn{},
                                      take<0, 2>(typename Base::SmemLayoutK{}),
                                      Shape<typename Base::BN, typename Base::HD>{}, Int<kKvCluster>{}));
  using TmaV = decltype(make_tma_copy(SM90_TMA_LOAD_MULTICAST{}, typename Base::GmemIn{},
                                      take<0, 2>(typename Base::SmemLayoutV{}),
                                      Shape<typename Base::BN, typename Base::HDV>{}, Int<kKvCluster>{}));
  using Params = KernelParams<typename Base::Element, typename Base::TmaQ, TmaK, TmaV, typename Base::TmaO>;

  // Query tiles per head rounded up to even, so that tiles 2i and 2i + 1 of the linear order
  // (m_block fastest) are always a pair of one head.
  static TileGeometry geometry(FwdParams const& p) {
    int const m_tiles = (p.seqlen_q + Base::kBlockM - 1) / Base::kBlockM;
    return TileGeometry(m_tiles + (m_tiles & 1), p.heads, p.batch);
  }
  static Params make_params(FwdParams const& p) {
    Params params = Base::template make_params_as<Params, SM90_TMA_LOAD_MULTICAST, kKvCluster>(p);
    params.geo = geometry(p);
    return params;
  }
};

// A scheduler whose grid is made of pairs (clusters of 2 along x): CTAs 2i and 2i + 1 take tiles
// 2i and 2i + 1, then both step by the (even) grid size, so a pair stays a pair. Base: the plain
// (one tile per CTA) or the static persistent scheduler; the dynamic one hands tiles to CTAs
// one by one and is not used (causal multicast tiles are ordered longest-first all the same).
template <class Base>
struct KvPairScheduler : Base {
  using Base::Base;
  // resident: the CTAs a persistent grid may hold (the caller caps it at the co-resident pairs).
  static dim3 grid(TileGeometry const& g, int resident) { return Base::grid(g, resident & ~1); }
  static dim3 cluster() { return dim3(2, 1, 1); }
};

}  // namespace flashcore::sm90
