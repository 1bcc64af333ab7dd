// Online softmax on the wgmma accumulator layout. Works in the log2 domain on *scaled* scores
// (s * scale * log2 e), so any scale sign works: a negative scale turns the row max of the raw
// scores into the row min. Row sums stay per-thread until finalize (one quad all-reduce).
#pragma once

#include "flashcore/sm90/common.cuh"

namespace flashcore::sm90 {

template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows];  // running max of scaled scores (log2 domain); -inf before any key
  float row_sum[kRows];  // per-thread partial sums of exp2(s - row_max)

  CUTE_DEVICE OnlineSoftmax() {
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) { row_max[i] = -INFINITY; row_sum[i] = 0.f; }
  }

  CUTE_DEVICE static float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
  }
  CUTE_DEVICE static float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffff, x, 1);
    return x + __shfl_xor_sync(0xffffffff, x, 2);
  }

  // Scores (rows, cols) -> unnormalised probabilities in place; returns in `corr` the factor the
  // output accumulator must be multiplied by. `mask(row, col)` -> true when the element is masked;
  // kMasked=false skips all masking work (interior key tiles).
  template <bool kMasked, class ScoreRC, class Mask>
  CUTE_DEVICE void step(ScoreRC& s, float scale_log2, Mask const& mask, float (&corr)[kRows]) {
    static_assert(decltype(size<0>(s))::value == kRows);
    constexpr int kCols = decltype(size<1>(s))::value;
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float m_cur;
      if constexpr (kMasked) {
        // Scale first, then mask to -inf in the scaled domain (correct for every scale sign).
        m_cur = -INFINITY;
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) {
          float v = mask(i, j) ? -INFINITY : s(i, j) * scale_log2;
          s(i, j) = v;
          m_cur = fmaxf(m_cur, v);
        }
      } else {
        // max over scaled = scale * (scale >= 0 ? max raw : min raw); uniform branch.
        float r = s(i, 0);
        if (scale_log2 >= 0.f) {
          CUTE_UNROLL
          for (int j = 1; j < kCols; ++j) r = fmaxf(r, s(i, j));
        } else {
          CUTE_UNROLL
          for (int j = 1; j < kCols; ++j) r = fminf(r, s(i, j));
        }
        m_cur = r * scale_log2;
      }
      m_cur = quad_max(m_cur);
      float m_new = fmaxf(row_max[i], m_cur);
      float m_use = m_new == -INFINITY ? 0.f : m_new;  // rows with no key yet: all p = 0, no NaN
      corr[i] = exp2f(row_max[i] - m_use);             // row_max = -inf -> 0
      row_max[i] = m_new;
      float sum = 0.f;
      if constexpr (kMasked) {
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) { float p = exp2f(s(i, j) - m_use); s(i, j) = p; sum += p; }
      } else {
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) {
          float p = exp2f(fmaf(s(i, j), scale_log2, -m_use));
          s(i, j) = p;
          sum += p;
        }
      }
      row_sum[i] = row_sum[i] * corr[i] + sum;
    }
  }

  // O (rows, cols) *= corr per row.
  template <class OutRC>
  CUTE_DEVICE static void rescale(OutRC& o, float const (&corr)[kRows]) {
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o); ++j) o(i, j) *= corr[i];
    }
  }

  // Normalise O; LSE (natural log) per row. Rows that saw no key: O = 0, LSE = +inf (the SM80
  // families' convention).
  template <class OutRC>
  CUTE_DEVICE void finalize(OutRC& o, float (&lse)[kRows]) {
    constexpr float kLn2 = 0.6931471805599453f;
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float sum = quad_sum(row_sum[i]);
      bool empty = !(sum > 0.f);  // 0 or NaN
      float inv = empty ? 0.f : 1.f / sum;
      lse[i] = empty ? INFINITY : row_max[i] * kLn2 + __logf(sum);
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o); ++j) o(i, j) *= inv;
    }
  }
};

}  // namespace flashcore::sm90
