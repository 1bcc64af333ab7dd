// Stream-K for persistent non-causal tiles: every CTA walks the same number of key tiles.
//
// T equal query tiles on P persistent CTAs take ceil(T / P) rounds: the grid's D128 cells have 2048
// 128-row tiles on 132 SMs, 15.5 rounds of work paid as 16, and at (1, 16, 16896) -- 2112 tiles, 16
// whole rounds -- our rate is 4.7 % above that at (1, 16, 16384) (benchmarks/NOTES.md, 2026-11-29
// 03:20-). Here, as CUTLASS's stream-K scheduler does (data-parallel rounds, then stream-K), all
// but the last whole round run statically, and the last P + r tiles' (P + r) K key tiles (K per query
// tile) are cut into P equal ranges, one per CTA. A range starts and ends inside a query tile at most
// once each, so such a tile is either whole or two pieces of CTAs c - 1 and c. Each piece's CTA writes
// its normalised partial O and LSE (fp32) to the call's scratch; the second to finish combines them
// (as split-KV does). A CTA walks its range first, pieces first (the tail piece of its last tile,
// then the head piece of its first), so that the combines overlap other CTAs' work.
//
// Used only where it helps and is exact: the host gives this scheduler its scratch when every query
// tile is whole (no packed sequences, seqlen_q a multiple of block_m), T > P is no multiple of P and
// the keys are many (kStreamKMinKeys: a piece's partial store and combine cost more than the balance
// saves below; FwdKernel::stream_k_call);
// uneven tiles take the dynamic scheduler's counter (4 bytes), and other calls no workspace: the
// static schedule. The device tells the modes apart by the same tests.
#pragma once

#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_conversion.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/epilogue.cuh"
#include "flashcore/sm90/epilogue_combine.cuh"
#include "flashcore/sm90/epilogue_split_global.cuh"
#include "flashcore/sm90/tile_scheduler.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

// Keys from which a call is cut into equal ranges. A/B on the grid's non-causal cells (bf16, H200, against
// the same tiles without stream-K; benchmarks/NOTES.md, 2026-11-29 03:20-): D128 128x128 -3..-9 % at
// 512-2k keys, -1..0 % at 4k, +0.6..+1.5 % at 8k, +1.8..+2.3 % at 16k; D256 128x64 -13..-2 % up to 4k,
// +0.6 % at 8k, +1.9 % at 16k.
constexpr int kStreamKMinKeys = 8192;

// The traits of a stream-K kernel: MainloopTmaWgmma::key_tiles then reads a piece's key range from
// WorkTile::split. Its own type, so that other kernels keep their mangled names and code.
template <class Base>
struct StreamKTraits : Base {
  static constexpr bool kStreamK = true;
};

// Scratch: int counter[P] (padded to 256 B), float lse[P - 1][2][kBlockM] (padded), float
// o[P - 1][2][kBlockM][kHeadDimV]. Slot c - 1 holds the two pieces of the tile CTA c's range starts in.
template <int kBlockM, int kHeadDimV>
struct StreamKWorkspace {
  static constexpr size_t kAlign = 256;
  CUTE_HOST_DEVICE static size_t counter_bytes(int ctas) { return (size_t(ctas) * sizeof(int) + kAlign - 1) / kAlign * kAlign; }
  CUTE_HOST_DEVICE static size_t lse_bytes(int ctas) {
    return (size_t(ctas - 1) * 2 * kBlockM * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  }
  static size_t bytes(int ctas) {
    return counter_bytes(ctas) + lse_bytes(ctas) + size_t(ctas - 1) * 2 * kBlockM * kHeadDimV * sizeof(float);
  }
  static size_t zeroed_bytes(int ctas) { return counter_bytes(ctas); }
  CUTE_DEVICE static int* counters(void* ws) { return static_cast<int*>(ws); }
  CUTE_DEVICE static float* lse(void* ws, int ctas) {
    return reinterpret_cast<float*>(static_cast<char*>(ws) + counter_bytes(ctas));
  }
  CUTE_DEVICE static float* o(void* ws, int ctas) {
    return reinterpret_cast<float*>(static_cast<char*>(ws) + counter_bytes(ctas) + lse_bytes(ctas));
  }
};

template <int kBlockM, int kBlockN, int kConsumerWarps>
struct StreamKTileScheduler {
  static constexpr bool kPersistent = true;
  using Dynamic = DynamicPersistentTileScheduler<false, kConsumerWarps, true>;
  Dynamic dyn;        // uneven tiles (a counter) or a call without scratch (static)
  bool stream;        // this call's last tiles are cut into equal key ranges
  int dp_tiles;       // tiles [0, dp_tiles) taken statically: CTA c takes c, c + P, ...
  int head_piece;     // split code of the second piece of the range's first tile (0: it starts on a tile)
  int tail_piece;     // split code of the first piece of the range's last tile (0: it ends on a tile)
  int first_tile, last_tile;  // the tiles of those pieces; the range's whole tiles are [whole_first, last_tile)
  int whole_first;

  template <class Params>
  CUTE_DEVICE explicit StreamKTileScheduler(Params const& p) : dyn(p.geo, p.workspace) {
    stream = p.workspace != nullptr && even_tiles<kBlockM>(p.seq);
    dp_tiles = head_piece = tail_piece = 0;
    first_tile = last_tile = whole_first = 0;
    if (!stream) return;
    // The static rounds but the last whole one; that one and the partial round (P + r tiles, r = T mod P)
    // are cut into P equal key ranges. So every range spans more than one tile (a tile has at most
    // two pieces), and the CTAs running at one time work on neighbouring tiles (they share K/V in L2),
    // as under the static schedule: ranges over the whole call had each CTA on its own head and lost
    // 1-17 % (benchmarks/NOTES.md, 2026-11-29 03:20-).
    int const tiles = p.geo.num_tiles;
    int const ctas = int(gridDim.x);
    dp_tiles = (tiles / ctas - 1) * ctas;
    int const key_tiles = (p.seq.seqlen_k + kBlockN - 1) / kBlockN;
    int64_t const units = int64_t(tiles - dp_tiles) * key_tiles;
    int64_t const begin = int64_t(blockIdx.x) * units / ctas;
    int64_t const end = (int64_t(blockIdx.x) + 1) * units / ctas;
    first_tile = dp_tiles + int(begin / key_tiles);
    last_tile = dp_tiles + int(end / key_tiles);  // the tile `end` lies in (past the last one when end == units)
    int const begin_off = int(begin % key_tiles);
    int const end_off = int(end % key_tiles);
    if (begin_off != 0) head_piece = stream_k_piece(begin_off, true);
    if (end_off != 0) tail_piece = stream_k_piece(end_off, false);
    whole_first = head_piece ? first_tile + 1 : first_tile;
  }
  static dim3 grid(TileGeometry const& g, int num_sms) { return Dynamic::grid(g, num_sms); }
  template <class SS> CUTE_DEVICE static void init(SS& ss) { Dynamic::init(ss); }

  CUTE_DEVICE WorkTile tile(int linear, int split = 0) const {
    WorkTile w = decode_tile<false>(dyn.g, linear);
    w.split = split;
    return w;
  }
  CUTE_DEVICE WorkTile done() const { return WorkTile{0, 0, 0, dyn.g.num_tiles}; }
  // After the range: this CTA's static tiles.
  CUTE_DEVICE WorkTile static_from(int linear) const { return linear < dp_tiles ? tile(linear) : done(); }
  CUTE_DEVICE WorkTile whole_from(int linear) const {
    return linear < last_tile ? tile(linear) : static_from(int(blockIdx.x));
  }
  // Its range first (the pieces, whose combines then overlap other CTAs' work, then its whole tiles),
  // then its static tiles: every CTA ends on the same number of whole tiles.
  CUTE_DEVICE WorkTile initial() const {
    if (!stream) return dyn.initial();
    if (tail_piece) return tile(last_tile, tail_piece);
    if (head_piece) return tile(first_tile, head_piece);
    return whole_from(whole_first);
  }
  CUTE_DEVICE bool valid(WorkTile const& w) const { return w.linear < dyn.g.num_tiles; }
  CUTE_DEVICE WorkTile next(WorkTile const& w) const {
    if (w.split == 0) return w.linear < dp_tiles ? static_from(w.linear + int(gridDim.x)) : whole_from(w.linear + 1);
    if (!stream_k_second(w.split) && head_piece) return tile(first_tile, head_piece);
    return whole_from(whole_first);
  }
  template <class SS>
  CUTE_DEVICE WorkTile producer_next(SS& ss, WorkTile const& w, int iter) const {
    return stream ? next(w) : dyn.producer_next(ss, w, iter);
  }
  template <class SS>
  CUTE_DEVICE WorkTile consumer_next(SS& ss, WorkTile const& w, int iter) const {
    return stream ? next(w) : dyn.consumer_next(ss, w, iter);
  }
};

// Whole tiles: EpilogueTmaStore. A piece: its normalised partial O (fp32) and LSE go to the scratch
// slot of its tile's boundary; the second piece to arrive (a per-slot counter) reads both back and
// writes O and LSE, with split-KV's global combine parts (epilogue_split_global.cuh). Every row of a piece is in the
// sequence (stream-K runs only on whole tiles).
template <class Traits>
struct EpilogueStreamK : EpilogueTmaStore<Traits> {
  using Base = EpilogueTmaStore<Traits>;
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using HDV = typename Traits::HDV;
  static constexpr int kBlockM = Traits::kBlockM;
  static constexpr int kHeadDimV = Traits::kHeadDimV;
  static constexpr int kChunk = 8;  // columns per combined vector: one 16-byte store
  static constexpr int kChunks = kHeadDimV / kChunk;
  using Workspace = StreamKWorkspace<kBlockM, kHeadDimV>;
  static_assert(Traits::kStreamK && !Traits::kPackGqa && Traits::kSplits == 1 && Traits::kPersistent);

  template <class AccO, class Softmax>
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid,
                                AccO& tOrO, Softmax& softmax) {
    if (w.split == 0) {
      Base::store(p, ss, w, seq, tid, tOrO, softmax);
      return;
    }
    typename Traits::TiledMmaPV tiled_mma_pv;
    auto thr_pv = tiled_mma_pv.get_thread_slice(tid);
    constexpr int kRows = decltype(size<0>(rowcol(tOrO)))::value;
    float lse[kRows];
    Tensor o_rc = rowcol(tOrO);
    softmax.finalize(o_rc, lse);  // rows that saw no key: O = 0, LSE = +inf
    Tensor tOcO = rowcol(thr_pv.partition_C(make_identity_tensor(Shape<BM, HDV>{})));

    int const ctas = int(gridDim.x);
    int const second = stream_k_second(w.split) ? 1 : 0;
    int const slot = int(blockIdx.x) - second;  // the boundary of CTAs slot and slot + 1
    float* lse_part = Workspace::lse(p.workspace, ctas) + int64_t(slot) * 2 * kBlockM;
    float* o_part = Workspace::o(p.workspace, ctas) + int64_t(slot) * 2 * kBlockM * kHeadDimV;
    store_partial<true>(o_rc, lse, tOcO, kBlockM, kHeadDimV, o_part + int64_t(second) * kBlockM * kHeadDimV,
                        lse_part + second * kBlockM);
    bool const last = last_to_arrive<Traits>(ss, Workspace::counters(p.workspace) + slot, 2, tid, [&] {
      // No O staged in shared memory: the buffer it would use (the V ring) is free at once.
      if constexpr (!Traits::kSeparateO) cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);
    });
    if (!last) return;

    Element* o_tile = p.o + int64_t(w.head) * p.o_head_stride + int64_t(w.batch) * p.o_batch_stride +
                      int64_t(w.m_block) * kBlockM * p.o_row_stride;
    float* lse_tile = p.lse + seq.lse_offset + int64_t(w.m_block) * kBlockM;
    cutlass::NumericArrayConverter<Element, float, kChunk> convert;
    // Unrolled: every thread's loads of both pieces are in flight at once (a rolled loop paid an L2
    // round trip per item: 8 of them at D128).
    static_assert(kBlockM * kChunks % Traits::kConsumerThreads == 0);
    CUTE_UNROLL
    for (int item = tid; item < kBlockM * kChunks; item += Traits::kConsumerThreads) {
      int const row = item / kChunks;
      int const c = item % kChunks;
      cutlass::Array<float, kChunk> acc;
      float const total_lse = combine_stored<2, kBlockM>(lse_part, o_part, kHeadDimV, row, c, acc);
      if (c * kChunk < p.head_dim_v) {
        cutlass::Array<Element, kChunk> out = convert(acc);
        *reinterpret_cast<uint4*>(o_tile + int64_t(row) * p.o_row_stride + c * kChunk) = *reinterpret_cast<uint4 const*>(&out);
      }
      if (c == 0) lse_tile[row] = total_lse;
    }
  }
};

}  // namespace flashcore::sm90
