// Key-split warpgroups: kKeyWGs consumer WGs of one CTA share a 64-row query tile, WG w walking
// the tile's key tiles w, w + kKeyWGs, ... (from the last), so a problem with fewer query tiles
// than SMs runs each tile's key loop kKeyWGs chains at a time instead of one, with no cluster
// launch and no global scratch (the few-CTA shapes of issue 8; split-KV's alternatives cost a
// cluster's ~1.65 us or a second pass).
//
// The ring: the producer loads the tile's key tiles in order into the kStages-slot K/V rings as
// always; walk index t lands in slot t % kStages. kStages is a multiple of kKeyWGs, so each WG owns
// kStages / kKeyWGs slots of its own (slot w + kKeyWGs i): the previous tile of every slot it waits
// on was its own, already consumed, so a parity wait can never pass a phase early (with a slot
// shared between WGs, a tile landing before an earlier one of another WG would let it). A slot has
// one consumer WG, so its empty barriers count one arrival. One slot per WG lets a WG's next load
// start only when it frees its current slot (each tile then waits a full load: 18 % of the stall
// samples, benchmarks/NOTES.md 2026-11-27 08:57-, calls 17-20); two per WG hide it.
//
// The combine (EpilogueKeySplit): each WG holds a partial result of the same 64 rows (online
// softmax over its share: O unnormalised, row max, per-thread row sum), and thread t of every WG
// holds the same (row, column) elements, so the combine is element-wise: WGs 1.. stage their
// fragments in the K/V rings (thread-major, conflict-free), WG 0 rescales every partial to the
// common row max and adds it to its own,
//   m = max_w m_w,   O = sum_w exp2(m_w - m) O_w,   l = sum_w exp2(m_w - m) l_w,
// then stores O and LSE through the usual TMA-store epilogue. A WG without key tiles adds nothing
// (m_w = -inf, O_w = 0); a NaN in a partial O still reaches the output (its weight is added).
#pragma once

#include <cutlass/arch/barrier.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/epilogue.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

// The traits of a key-split variant: Base (one consumer WG, one 64-row tile per CTA) with
// kKeyWGs_ consumer WGs. Its own type, so one-WG kernels keep their mangled names and code.
template <class Base, int kKeyWGs_>
struct KeySplitTraits : Base {
  static constexpr int kKeyWGs = kKeyWGs_;
  static_assert(kKeyWGs >= 2 && kKeyWGs <= 4, "2 to 4 key-split warpgroups");
  static_assert(Base::kConsumerWGs == 1 && !Base::kPersistent && Base::kSplits == 1 && Base::kCtasPerSm == 1 &&
                    !Base::kPackGqa,
                "key-split warpgroups share one 64-row query tile per CTA: no persistent loop, split-KV, second "
                "CTA per SM or GQA packing");
  static_assert(Base::kStages % kKeyWGs == 0, "key-split warpgroups own kStages / kKeyWGs ring slots each");
  static constexpr int kConsumerWGs = kKeyWGs;
  static constexpr int kConsumerThreads = 128 * kConsumerWGs;
  static constexpr int kEpilogueThreads = 128;  // WG 0 stores the combined O
  static constexpr int kThreads = 128 + kConsumerThreads;
  static constexpr int kProducerRegs = RegisterSplit<kConsumerWGs>::kProducer;
  static constexpr int kConsumerRegs = RegisterSplit<kConsumerWGs>::kConsumer;
  // Partials staged per thread: the O fragment (64 x Dv / 128), row max and row sum of 2 rows.
  static constexpr int kStagedFloats = Base::kHeadDimV / 2 + 4;
  using SharedStorage = typename Base::SharedStorage;
  static_assert(sizeof(SharedStorage::k) % 1024 == 0 && offsetof(SharedStorage, v) == sizeof(SharedStorage::k) +
                                                                                        offsetof(SharedStorage, k),
                "the partials are staged across the K ring into the V ring, which follows it");
  static_assert((kKeyWGs - 1) * 128 * kStagedFloats * 4 <= int(sizeof(SharedStorage::k) + sizeof(SharedStorage::v)),
                "key-split partials must fit the K and V rings");
};

template <class Traits>
struct EpilogueKeySplit {
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using Store = EpilogueTmaStore<Traits>;
  static constexpr int kKeyWGs = Traits::kKeyWGs;
  static constexpr int kFloats = Traits::kStagedFloats;

  template <class AccO, class Softmax>
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid,
                                AccO& tOrO, Softmax& softmax) {
    using cutlass::arch::NamedBarrier;
    Tensor o = rowcol(tOrO);
    constexpr int kRows = decltype(size<0>(o))::value;
    constexpr int kCols = decltype(size<1>(o))::value;
    static_assert(kRows * kCols + 2 * kRows == kFloats, "fragment size");
    int const key_wg = tid / 128, t = tid % 128;
    float* staging = reinterpret_cast<float*>(ss.k.data());  // the K ring, then the V ring
    // Element e of WG w's partial (w >= 1) for thread t.
    auto slot = [&](int wg, int e) -> float& { return staging[((wg - 1) * kFloats + e) * 128 + t]; };
    uint32_t const all = uint32_t(Traits::kConsumerThreads);
    uint32_t const done_reading = uint32_t(NamedBarriers::kKeySplit);
    uint32_t const staged = uint32_t(NamedBarriers::kEpilogue);

    // Both barriers are full syncs of every consumer thread: WG 0 has nothing to do before the
    // partials are staged, and an arrive-only signal (as the first version had) reads as a race to
    // compute-sanitizer's racecheck (benchmarks/NOTES.md, 2026-11-27 10:25-, call 3).
    // Every WG's wgmmas have read the rings (and every load landed) before they are overwritten.
    NamedBarrier::sync(all, done_reading);
    if (key_wg > 0) {
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) slot(key_wg, i * kCols + j) = o(i, j);
        slot(key_wg, kRows * kCols + i) = softmax.row_max[i];
        slot(key_wg, kRows * kCols + kRows + i) = softmax.row_sum[i];
      }
    }
    NamedBarrier::sync(all, staged);
    if (key_wg > 0) return;
    float m[kRows];
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      m[i] = softmax.row_max[i];
      CUTE_UNROLL
      for (int wg = 1; wg < kKeyWGs; ++wg) m[i] = fmaxf(m[i], slot(wg, kRows * kCols + i));
    }
    // Scale of a partial whose max is m_w; 0 for one that saw no key (its O is 0 and its max -inf).
    auto weight = [&](float m_w, int i) { return m_w == -INFINITY ? 0.f : exp2f(m_w - m[i]); };
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float const s0 = weight(softmax.row_max[i], i);
      float sum = softmax.row_sum[i] * s0;
      CUTE_UNROLL
      for (int j = 0; j < kCols; ++j) o(i, j) *= s0;
      CUTE_UNROLL
      for (int wg = 1; wg < kKeyWGs; ++wg) {
        float const s = weight(slot(wg, kRows * kCols + i), i);
        sum += slot(wg, kRows * kCols + kRows + i) * s;
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) o(i, j) += slot(wg, i * kCols + j) * s;
      }
      softmax.row_max[i] = m[i];
      softmax.row_sum[i] = sum;
    }
    Store::store(p, ss, w, seq, tid, tOrO, softmax);
  }

  CUTE_DEVICE static void producer_finish() {}
  CUTE_DEVICE static void finish(int tid) {
    if (tid < 128) Store::finish(tid);
  }
};

}  // namespace flashcore::sm90
