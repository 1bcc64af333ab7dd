// Score masking and the online softmax on SM80 MMA accumulators.
#pragma once

#include "flashcore/sm80/common.cuh"

namespace flashcore::sm80 {

// Scores of invisible keys (past the sequence end, outside the causal diagonal or the window)
// become -inf. row0, col0: the tile's first query row and key.
template <bool kCausal, class ScoreTensor, class CoordTensor>
CUTE_DEVICE void apply_mask(ScoreTensor& acc_s, CoordTensor const& coords, KeyMask const& mask, int row0, int col0) {
  auto s = rowcol_view(acc_s);
  auto c = rowcol_view(coords);
  CUTE_UNROLL
  for (int i = 0; i < size<0>(s); ++i) {
    int const row = row0 + get<0>(c(i, 0));
    CUTE_UNROLL
    for (int j = 0; j < size<1>(s); ++j) {
      if (!key_visible<kCausal>(mask, row, col0 + get<1>(c(i, j)))) s(i, j) = -INFINITY;
    }
  }
}

// Logit softcap: raw scores -> tanh(s * softcap_scale) (FwdParams::softcap_scale; the softmax then
// runs with the cap as its scale). Before the mask, so that masked scores stay -inf.
template <class ScoreTensor>
CUTE_DEVICE void apply_softcap(ScoreTensor& acc_s, float softcap_scale) {
  CUTE_UNROLL
  for (int i = 0; i < size(acc_s); ++i) acc_s(i) = tanh_approx(acc_s(i) * softcap_scale);
}

// A row's 8 columns per n8 tile are spread over the 4 threads of a quad, so row reductions
// finish with two xor-shuffles.
CUTE_DEVICE float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
}
CUTE_DEVICE float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  return x + __shfl_xor_sync(0xffffffff, x, 2);
}

// Online softmax over the kRows accumulator rows a thread holds.
// scale_log2 must be positive (FwdParams::scale_log2_abs, with a negative scale folded into Q by
// negate_smem): the running max of raw scores is then the max of the scaled ones, and a masked
// score (-inf) scales to -inf, i.e. probability 0.
template <int kRows_>
struct OnlineSoftmax {
  static constexpr int kRows = kRows_;
  float row_max[kRows];  // running max of raw scores (unscaled)
  float row_sum[kRows];  // this thread's partial sum of exp (quad-reduced at the end)

  // A tile whose rows all precede the first key (bottom-right causal, Sq > Sk) runs no update:
  // finalize must then see an empty row (O = 0, LSE = +inf), not uninitialised registers.
  CUTE_DEVICE OnlineSoftmax() {
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) { row_max[i] = -INFINITY; row_sum[i] = 0.f; }
  }

  // Turn the score tile into probabilities in place and rescale the output accumulator.
  template <bool kFirst, class ScoreTensor, class OutTensor>
  CUTE_DEVICE void update(ScoreTensor& acc_s, OutTensor& acc_o, float scale_log2) {
    auto s = rowcol_view(acc_s);
    auto o = rowcol_view(acc_o);
    static_assert(decltype(size<0>(s))::value == kRows);
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float tile_max = s(i, 0);
      CUTE_UNROLL
      for (int j = 1; j < size<1>(s); ++j) tile_max = fmaxf(tile_max, s(i, j));
      tile_max = quad_max(tile_max);
      float new_max = kFirst ? tile_max : fmaxf(row_max[i], tile_max);
      // A row with every key masked so far has max -inf: subtract 0 to keep exp2 finite.
      float max_scaled = new_max == -INFINITY ? 0.f : new_max * scale_log2;
      float tile_sum = 0.f;
      CUTE_UNROLL
      for (int j = 0; j < size<1>(s); ++j) {
        s(i, j) = exp2f(s(i, j) * scale_log2 - max_scaled);
        tile_sum += s(i, j);
      }
      if constexpr (kFirst) {
        row_sum[i] = tile_sum;
      } else {
        float correction = exp2f(row_max[i] * scale_log2 - max_scaled);
        row_sum[i] = row_sum[i] * correction + tile_sum;
        CUTE_UNROLL
        for (int j = 0; j < size<1>(o); ++j) o(i, j) *= correction;
      }
      row_max[i] = new_max;
    }
  }

  // The mainloops' call: the first key tile has no running state to rescale.
  template <class ScoreTensor, class OutTensor>
  CUTE_DEVICE void update(bool first_tile, ScoreTensor& acc_s, OutTensor& acc_o, float scale_log2) {
    if (first_tile) {
      update<true>(acc_s, acc_o, scale_log2);
    } else {
      update<false>(acc_s, acc_o, scale_log2);
    }
  }

  // Normalise the output rows; return each row's natural-log logsumexp.
  template <class OutTensor>
  CUTE_DEVICE void finalize(OutTensor& acc_o, float scale, float (&lse)[kRows]) {
    auto o = rowcol_view(acc_o);
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float sum = quad_sum(row_sum[i]);
      float inv = (sum == 0.f || sum != sum) ? 1.f : 1.f / sum;
      lse[i] = (sum == 0.f || sum != sum) ? INFINITY : row_max[i] * scale + __logf(sum);
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o); ++j) o(i, j) *= inv;
    }
  }
};

}  // namespace flashcore::sm80
