// Epilogue: normalise O, then write LSE (fp32, natural log, (B, H, Sq)) and O (bf16/fp16) for
// the valid rows and head-dim columns straight from registers.
#pragma once

#include <cute/arch/copy_sm90.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

template <class Traits>
struct EpilogueTmaStore {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using HD = typename Traits::HD;

  template <class AccO, class Softmax>
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid,
                                AccO& tOrO, Softmax& softmax) {
    typename Traits::TiledMmaPV tiled_mma_pv;
    auto thr_pv = tiled_mma_pv.get_thread_slice(tid);

    constexpr int kRows = decltype(size<0>(rowcol(tOrO)))::value;
    float lse[kRows];
    Tensor o_rc = rowcol(tOrO);
    softmax.finalize(o_rc, lse);

    // LSE: the thread holding column 0 of a row writes it.
    Tensor cO = make_identity_tensor(Shape<BM, HD>{});
    Tensor tOcO = rowcol(thr_pv.partition_C(cO));
    int const row0 = w.m_block * Traits::kBlockM;
    if (get<1>(tOcO(0, 0)) == 0) {
      float* lse_ptr = p.lse + seq.lse_offset;
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        int row = row0 + get<0>(tOcO(i, 0));
        if (row < seq.seqlen_q) lse_ptr[row] = lse[i];
      }
    }

    // O straight from registers to global memory, no shared-memory staging: each thread stores
    // its (row, two adjacent columns) pairs as 32-bit words, a warp 16 contiguous bytes of each of
    // 8 rows per instruction. Rows past the sequence (packed sequences, the last tile) and head-dim
    // columns past the call's are skipped. No barrier, no fence, no store to wait for: the next
    // tile starts while the stores drain (a TMA store through shared memory cost 1-2k cycles a
    // tile in barriers, fence and staging; benchmarks/NOTES.md, 2026-11-26 17:44-).
    Tensor rO = convert_fragment<Element>(tOrO);
    Tensor rO32 = recast<uint32_t>(rO);  // pairs: the accumulator's innermost mode is 2 adjacent columns
    Tensor tOcO_flat = thr_pv.partition_C(cO);
    static_assert(decltype(size(rO32))::value * 2 == decltype(size(rO))::value);
    Element* base = p.o + int64_t(seq.q_start) * p.o_row_stride + int64_t(w.head) * p.o_head_stride +
                    int64_t(w.batch) * p.o_batch_stride;  // packed: batch stride 0 (make_params)
    CUTE_UNROLL
    for (int k = 0; k < size(rO32); ++k) {
      int const row = row0 + get<0>(tOcO_flat(2 * k));
      int const col = get<1>(tOcO_flat(2 * k));
      if (row < seq.seqlen_q && col < p.head_dim_v) {
        *reinterpret_cast<uint32_t*>(base + int64_t(row) * p.o_row_stride + col) = rO32(k);
      }
    }
  }

  // The producer warpgroup's part in the epilogue: none (see EpilogueSplitCombine).
  CUTE_DEVICE static void producer_finish() {}

  // After the last tile: nothing in flight that reads shared memory.
  CUTE_DEVICE static void finish(int) {}
};

}  // namespace flashcore::sm90
