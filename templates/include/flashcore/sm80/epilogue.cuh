// Epilogue: normalised O through shared memory (so global stores are 128-bit and coalesced),
// and the LSE of each valid row from the quad leader that holds it.
#pragma once

#include "flashcore/sm80/common.cuh"

namespace flashcore::sm80 {

template <class Element, int kThreads, class TiledMma, class AccO, class SmemO, class GmemO, class CoordO>
CUTE_DEVICE void store_output(TiledMma const& mma, AccO const& acc_o, SmemO& sO, GmemO& gO, CoordO const& cO,
                              int valid_rows, int tid) {
  auto rO = convert_to<Element>(acc_o);
  auto smem_copy = make_tiled_copy_C(Copy_Atom<DefaultCopy, Element>{}, mma);
  auto smem_thr = smem_copy.get_thread_slice(tid);
  copy(smem_copy, smem_thr.retile_S(rO), smem_thr.partition_D(sO));
  __syncthreads();
  constexpr int kCols = decltype(size<1>(sO))::value;
  constexpr int kVecsPerRow = kCols / 8 < 8 ? kCols / 8 : 8;
  auto gmem_copy = make_tiled_copy(Copy_Atom<UniversalCopy<uint128_t>, Element>{},
                                   Layout<Shape<Int<kThreads / kVecsPerRow>, Int<kVecsPerRow>>,
                                          Stride<Int<kVecsPerRow>, _1>>{},
                                   Layout<Shape<_1, _8>>{});
  auto gthr = gmem_copy.get_thread_slice(tid);
  auto tOsO = gthr.partition_S(sO);
  auto tOgO = gthr.partition_D(gO);
  auto tOcO = gthr.partition_D(cO);
  CUTE_UNROLL
  for (int m = 0; m < size<1>(tOsO); ++m) {
    if (get<0>(tOcO(0, m, 0)) < valid_rows) copy(gmem_copy, tOsO(_, m, _), tOgO(_, m, _));
  }
}

template <int kRows, class CoordTensor>
CUTE_DEVICE void store_lse(float const (&lse)[kRows], CoordTensor const& acc_coords, float* lse_row0,
                           int valid_rows, int tid) {
  if (tid % 4 != 0) return;  // the quad leader writes each row once
  auto c = rowcol_view(acc_coords);
  CUTE_UNROLL
  for (int i = 0; i < kRows; ++i) {
    int row = get<0>(c(i, 0));
    if (row < valid_rows) lse_row0[row] = lse[i];
  }
}

// Two steps, so that the kernel can put a barrier between them where its mainloop needs one
// before the Q tile's shared memory becomes the O tile.
template <class Config>
struct EpilogueViaSmem {
  using Element = typename Config::Element;

  // Normalise the rows of O and write their logsumexp.
  template <class Block, class AccO, class Softmax>
  CUTE_DEVICE static void normalize_and_store_lse(FwdParams const& p, Block const& blk, AccO& acc_o, Softmax& softmax,
                                                  int tid) {
    float lse[Softmax::kRows];
    softmax.finalize(acc_o, p.scale_log2_abs * float(M_LN2), lse);
    typename Config::TiledMma mma;
    auto tOcO = mma.get_thread_slice(tid).partition_C(make_identity_tensor(typename Config::ShapeQ{}));
    float* lse_row0 = p.lse + blk.seq.lse_offset + blk.row0;
    store_lse(lse, tOcO, lse_row0, blk.rows, tid);
  }

  // O (already normalised) through sO, which aliases the Q tile, to gO.
  template <class AccO, class SmemO, class GmemO>
  CUTE_DEVICE static void store_o(AccO const& acc_o, SmemO& sO, GmemO& gO, int valid_rows, int tid) {
    store_output<Element, Config::kThreads>(typename Config::TiledMma{}, acc_o, sO, gO,
                                            make_identity_tensor(typename Config::ShapeQ{}), valid_rows, tid);
  }
};

}  // namespace flashcore::sm80
