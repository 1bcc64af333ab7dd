// Key-split epilogue: the kKeyWGs consumer WGs of a CTA each hold a partial result of the same
// 64 query rows (online softmax over their share of the key tiles: O unnormalised, row max, row
// sum). Thread t of every WG holds the same (row, column) elements, so the combine is element-wise:
// WGs 1.. stage their fragments in the K/V rings (thread-major, conflict-free), WG 0 rescales
// every partial to the common row max and adds it to its own,
//   m = max_w m_w,   O = sum_w exp2(m_w - m) O_w,   l = sum_w exp2(m_w - m) l_w,
// then stores O and LSE through the usual TMA-store epilogue. A WG without key tiles adds
// nothing (m_w = -inf, O_w = 0); a NaN in a partial O still reaches the output (its weight is added).
#pragma once

#include <cutlass/arch/barrier.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/epilogue.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

template <class Traits>
struct EpilogueKeySplit {
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using Store = EpilogueTmaStore<Traits>;
  static constexpr int kKeyWGs = Traits::kKeyWGs;
  static constexpr int kFloats = Traits::kKeySplitFloats;
  static_assert(kKeyWGs >= 2 && Traits::kRowWGs == 1);

  template <class AccO, class Softmax>
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid,
                                AccO& tOrO, Softmax& softmax) {
    using cutlass::arch::NamedBarrier;
    constexpr int kRows = decltype(size<0>(rowcol(tOrO)))::value;
    constexpr int kCols = decltype(size<1>(rowcol(tOrO)))::value;
    static_assert(kRows * kCols + 2 * kRows == kFloats, "fragment size");
    Tensor o = rowcol(tOrO);
    int const key_wg = tid / 128, t = tid % 128;
    float* staging = reinterpret_cast<float*>(ss.k.data());  // the K ring, then the V ring
    // Element e of WG w's partial (w >= 1) for thread t.
    auto slot = [&](int wg, int e) -> float& { return staging[((wg - 1) * kFloats + e) * 128 + t]; };
    uint32_t const all = uint32_t(Traits::kConsumerThreads);
    uint32_t const done_reading = uint32_t(NamedBarriers::kKeySplit);
    uint32_t const staged = uint32_t(NamedBarriers::kEpilogue);

    if (key_wg > 0) {
      // Every WG's wgmmas have read the rings before they are overwritten.
      NamedBarrier::sync(all, done_reading);
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) slot(key_wg, i * kCols + j) = o(i, j);
        slot(key_wg, kRows * kCols + i) = softmax.row_max[i];
        slot(key_wg, kRows * kCols + kRows + i) = softmax.row_sum[i];
      }
      NamedBarrier::arrive(all, staged);
      return;
    }
    NamedBarrier::arrive(all, done_reading);
    NamedBarrier::sync(all, staged);
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
  CUTE_DEVICE static void finish(int tid) { Store::finish(tid); }
};

}  // namespace flashcore::sm90
