// Online softmax on the wgmma accumulator layout. Works in the log2 domain on *scaled* scores
// (s * scale * log2 e), so any scale sign works: a negative scale turns the row max of the raw
// scores into the row min. Row sums stay per-thread until finalize (one quad all-reduce).
// kLazy: a row keeps its running max until a tile's max exceeds it by more than kLazyMargin (log2
// units), so its probabilities stay below 2^kLazyMargin and its correction factor is exactly 1 on
// most tiles; O, the row sum and the LSE all refer to the same (kept) max, so the result is that of
// the eager rescale up to rounding. The PV GEMM reads P rounded to the input type; the eager max's
// own weight is exactly 1 there, a kept max's is 2^g (0 < g <= kLazyMargin) and rounds, which in a
// peaked row (one key carrying most of the weight) puts its rounding straight into the output: the
// bf16 outputs of the lazy kernels were 1.3-1.5x SDPA's error and failed the reference test's
// 2x bound in 1-2 of 40 random draws (benchmarks/NOTES.md, 2026-11-27 18:48-, call 6). So each
// thread also sums, per row, what rounding changed of its largest weight of each tile, and O is
// normalised by the sum of the weights as the GEMM saw them there; the LSE keeps the exact sum.
#pragma once

#include "flashcore/sm90/common.cuh"

namespace flashcore::sm90 {

// kSelectMasked: masked tiles reduce and exponentiate the raw scores as unmasked ones do, selecting
// the hidden elements out (-inf for the max, 0 for the weight), instead of first rewriting the
// scores scaled and masked in place. At 160 registers (3 consumer WGs) the in-place pass spilled:
// the D64 192x128 causal lazy tile 280 / 308 B, all of it in the masked tiles' softmax, against
// 40 / 56 B selected (ptxas). The mainloop chooses (mainloop.cuh: measured there).
// kMmaSum: the row sums come from the PV GEMM (mainloop.cuh pv_gemm: P as the GEMM reads it, rounded to
// the input type); step() keeps none and finalize() takes whole-row sums in row_sum, normalising O
// by them. The LSE takes the exact sum: row_round then holds what rounding added to the weights, the
// whole of it on masked tiles (a row seeing few keys has them all there: one rounded weight would be
// the sum's whole error, 2^-9, against the LSE's 1e-3) and for each tile's largest weight elsewhere (as
// the lazy softmax's term: a peaked row's error); the other weights' roundings average out. On a masked
// tile step() subtracts the exact weights' sum, and the mainloop adds what that tile's PV GEMM added to
// the row's GEMM sum (mainloop.cuh: one FADD a score, where rounding each weight here took three).
template <int kRows, bool kLazy = false, class Element = float, bool kSelectMasked = false, bool kMmaSum = false>
struct OnlineSoftmax {
  // 2^8: P stays far inside fp16's range (65504) and the fp32 sums keep their precision. (Skipping
  // the correction is FlashAttention-4's, on Blackwell; FA3's Hopper kernels rescale every tile.)
  static constexpr float kLazyMargin = 8.f;
  float row_max[kRows];  // running max of scaled scores (log2 domain); -inf before any key
  float row_sum[kRows];  // per-thread partial sums of exp2(s - row_max)
  // Lazy: per-thread sums of (rounded - exact) of the thread's largest weight of each tile (see top).
  float row_round[kLazy || kMmaSum ? kRows : 1];

  CUTE_DEVICE OnlineSoftmax() {
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) { row_max[i] = -INFINITY; row_sum[i] = 0.f; }
    CUTE_UNROLL
    for (int i = 0; i < (kLazy || kMmaSum ? kRows : 1); ++i) row_round[i] = 0.f;
  }

  CUTE_DEVICE static float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
  }
  CUTE_DEVICE static float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffff, x, 1);
    return x + __shfl_xor_sync(0xffffffff, x, 2);
  }

  // The row max runs as kAcc interleaved partial chains, combined at the end: as one serial chain
  // of kCols dependent FMNMX, each waiting out the previous one's latency before any exp could
  // start, it was the largest stall of the softmax (ncu "wait" stalls, 2x cuDNN's). The row sum
  // stays one chain: its FADDs follow the exps, which issue no faster (partial sums there only
  // bunched the exps up: MIO throttle). Every row of a wgmma accumulator holds a multiple of 4
  // columns per thread (block_n % 16 == 0).
  static constexpr int kAcc = 4;
  // at(i, j): the value row i's column j contributes (the score itself, or a masked tile's selection).
  template <class ScoreRC, class Op, class At>
  CUTE_DEVICE static float row_reduce(ScoreRC const& s, int i, Op op, At at) {
    constexpr int kCols = decltype(size<1>(s))::value;
    static_assert(kCols % kAcc == 0);
    float acc[kAcc];
    CUTE_UNROLL
    for (int a = 0; a < kAcc; ++a) acc[a] = at(i, a);
    CUTE_UNROLL
    for (int j = kAcc; j < kCols; ++j) acc[j % kAcc] = op(acc[j % kAcc], at(i, j));
    CUTE_UNROLL
    for (int w = kAcc / 2; w > 0; w /= 2) {
      CUTE_UNROLL
      for (int a = 0; a < w; ++a) acc[a] = op(acc[a], acc[a + w]);
    }
    return acc[0];
  }
  template <class ScoreRC, class Op>
  CUTE_DEVICE static float row_reduce(ScoreRC const& s, int i, Op op) {
    return row_reduce(s, i, op, [&](int r, int c) { return s(r, c); });
  }

  // Scores (rows, cols) -> unnormalised probabilities in place; returns in `corr` the factor the
  // output accumulator must be multiplied by. `mask(row, col)` -> true when the element is masked;
  // kMasked=false skips all masking work (interior key tiles). Each phase runs over all rows
  // before the next, so the rows' chains and shuffles overlap.
  template <bool kMasked, class ScoreRC, class Mask>
  CUTE_DEVICE void step(ScoreRC& s, float scale_log2, Mask const& mask, float (&corr)[kRows]) {
    static_assert(decltype(size<0>(s))::value == kRows);
    constexpr int kCols = decltype(size<1>(s))::value;
    auto max_op = [](float a, float b) { return fmaxf(a, b); };
    float m_cur[kRows];
    float top_raw[kRows];  // unmasked or selected: the raw score behind m_cur (the lazy rounding term recomputes its weight)
    if constexpr (kMasked && !kSelectMasked) {
      // Scale first, then mask to -inf in the scaled domain (correct for every scale sign).
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        CUTE_UNROLL
        for (int j = 0; j < kCols; ++j) s(i, j) = mask(i, j) ? -INFINITY : s(i, j) * scale_log2;
      }
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) m_cur[i] = row_reduce(s, i, max_op);
    } else if constexpr (kMasked) {
      auto masked_reduce = [&](int i, float hidden, auto op) {
        return row_reduce(s, i, op, [&](int r, int c) { return mask(r, c) ? hidden : s(r, c); });
      };
      // A thread-row with every element hidden reduces to the sentinel: its scaled max is -inf
      // (not sentinel * scale, which is NaN at scale 0).
      if (scale_log2 >= 0.f) {
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) {
          top_raw[i] = masked_reduce(i, -INFINITY, max_op);
          m_cur[i] = top_raw[i] == -INFINITY ? -INFINITY : top_raw[i] * scale_log2;
        }
      } else {
        auto min_op = [](float a, float b) { return fminf(a, b); };
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) {
          top_raw[i] = masked_reduce(i, INFINITY, min_op);
          m_cur[i] = top_raw[i] == INFINITY ? -INFINITY : top_raw[i] * scale_log2;
        }
      }
    } else {
      // max over scaled = scale * (scale >= 0 ? max raw : min raw); uniform branch.
      if (scale_log2 >= 0.f) {
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) { top_raw[i] = row_reduce(s, i, max_op); m_cur[i] = top_raw[i] * scale_log2; }
      } else {
        auto min_op = [](float a, float b) { return fminf(a, b); };
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) { top_raw[i] = row_reduce(s, i, min_op); m_cur[i] = top_raw[i] * scale_log2; }
      }
    }
    float m_use[kRows];
    // Lazy, unmasked tiles: where every thread's own partial max of each of its rows stays within
    // the margin of the row's kept max, so does the row's max. One warp vote then replaces the quad
    // shuffles and the factors' exps (each factor is exactly 1: the per-row test below would give
    // the same). Not on masked tiles: they are a short causal tile's first ones, where the rows'
    // maxima still grow and the vote only adds (benchmarks/NOTES.md, 2026-11-27 16:11-, call 10).
    bool keep_all = false;
    if constexpr (kLazy && !kMasked) {
      bool within = true;
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) within &= m_cur[i] - row_max[i] <= kLazyMargin;  // false for -inf rows
      keep_all = __all_sync(0xffffffff, within);
    }
    if (keep_all) {
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) { m_use[i] = row_max[i]; corr[i] = 1.f; }
    } else {
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        float m_new = fmaxf(row_max[i], quad_max(m_cur[i]));
        // Lazy: keep the max while the growth is within the margin (false for -inf - -inf = NaN).
        bool const keep = kLazy && m_new - row_max[i] <= kLazyMargin;
        if (keep) m_new = row_max[i];
        m_use[i] = m_new == -INFINITY ? 0.f : m_new;  // rows with no key yet: all p = 0, no NaN
        corr[i] = keep ? 1.f : exp2f(row_max[i] - m_use[i]);  // row_max = -inf -> 0
        row_max[i] = m_new;
      }
    }
    if constexpr ((kLazy && !kMmaSum) || (kMmaSum && !kMasked)) {
      // The thread's largest weight of the row in this tile, computed as the loop below computes it
      // (bit for bit), and what rounding to the GEMM's type changes of it.
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        // (A thread-row with every element hidden has no weight.)
        float top;
        if constexpr (kMasked && !kSelectMasked) top = exp2f(m_cur[i] - m_use[i]);
        else if constexpr (kMasked) top = m_cur[i] == -INFINITY ? 0.f : exp2f(fmaf(top_raw[i], scale_log2, -m_use[i]));
        else top = exp2f(fmaf(top_raw[i], scale_log2, -m_use[i]));
        row_round[i] = row_round[i] * corr[i] + (static_cast<float>(static_cast<Element>(top)) - top);
      }
    }
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float sum = 0.f;
      CUTE_UNROLL
      for (int j = 0; j < kCols; ++j) {
        float p;
        if constexpr (kMasked && !kSelectMasked) {
          p = exp2f(s(i, j) - m_use[i]);
        } else {
          p = exp2f(fmaf(s(i, j), scale_log2, -m_use[i]));
          if constexpr (kMasked) p = mask(i, j) ? 0.f : p;
        }
        s(i, j) = p;
        if constexpr (!kMmaSum || kMasked) sum += p;
      }
      if constexpr (!kMmaSum) row_sum[i] = row_sum[i] * corr[i] + sum;
      if constexpr (kMmaSum && kMasked) row_round[i] = row_round[i] * corr[i] - sum;  // the GEMM's part: mainloop
    }
  }

  // O (rows, cols) *= corr per row. Lazy: skipped (a warp-uniform branch) unless some row of the
  // warp changed its max, i.e. has a factor other than exactly 1.
  template <class OutRC>
  CUTE_DEVICE static void rescale(OutRC& o, float const (&corr)[kRows]) {
    if constexpr (kLazy) {
      bool changed = false;
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) changed |= corr[i] != 1.f;
      if (!__any_sync(0xffffffff, changed)) return;
    }
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
      // sum: the exact weights' (the LSE's); seen: the weights as the GEMM saw them (O's).
      float sum, seen;
      bool empty;  // 0 or NaN
      if constexpr (kMmaSum) {
        seen = row_sum[i];
        empty = !(seen > 0.f);
        sum = seen - quad_sum(row_round[i]);
      } else {  // (the order of before the PV sums: those kernels keep their SASS)
        sum = quad_sum(row_sum[i]);
        empty = !(sum > 0.f);
        seen = kLazy ? sum + quad_sum(row_round[i]) : sum;
      }
      float inv = empty ? 0.f : 1.f / seen;
      lse[i] = empty ? INFINITY : row_max[i] * kLn2 + __logf(sum);
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o); ++j) o(i, j) *= inv;
    }
  }
};

}  // namespace flashcore::sm90
