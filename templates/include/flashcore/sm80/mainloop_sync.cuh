// The "mma" family's mainloop (roadmap step 2): both GEMMs on tensor cores, P kept in registers
// between them, and deliberately plain otherwise: synchronous loads into row-major shared memory,
// one barrier pair per key tile, element-wise shared->register copies (no ldmatrix).
#pragma once

#include "flashcore/sm80/common.cuh"
#include "flashcore/sm80/softmax.cuh"

namespace flashcore::sm80 {

template <class Config_>
struct MainloopSync {
  using Config = Config_;
  using Element = typename Config::Element;
  static constexpr int kHeadDim = Config::kHeadDim;
  static constexpr int kBlockM = Config::kBlockM;
  static constexpr int kBlockN = Config::kBlockN;

  using SmemLayoutQ = Layout<Shape<Int<kBlockM>, Int<kHeadDim>>, Stride<Int<kHeadDim>, _1>>;
  using SmemLayoutKV = Layout<Shape<Int<kBlockN>, Int<kHeadDim>>, Stride<Int<kHeadDim>, _1>>;
  using SmemLayoutVt = Layout<Shape<Int<kHeadDim>, Int<kBlockN>>, Stride<_1, Int<kHeadDim>>>;

  struct SharedStorage {
    array_aligned<Element, cosize_v<SmemLayoutQ>, 128> q;  // reused for O in the epilogue
    array_aligned<Element, cosize_v<SmemLayoutKV>, 128> k;
    array_aligned<Element, cosize_v<SmemLayoutKV>, 128> v;
  };

  // Synchronous global->shared copy, through registers.
  using GmemCopy = GmemTiledCopy<UniversalCopy<uint128_t>, Config>;

  // No barrier follows the last QK^T: a warp may still read sQ when another reaches the epilogue.
  static constexpr bool kSmemQFreeAfterLoop = false;

  // The Q copy is complete when it returns.
  CUTE_DEVICE static void wait_q() {}

  // gK, gV: the block's K and V tiles in global memory (N, D, n).
  template <class Block, class GmemKV, class QTile, class AccO, class Softmax>
  CUTE_DEVICE static void run(FwdParams const& p, Block const& blk, SharedStorage& smem, int tid, GmemKV const& gK,
                              GmemKV const& gV, QTile const& q, AccO& acc_o, Softmax& softmax) {
    auto sQ = make_tensor(make_smem_ptr(smem.q.data()), SmemLayoutQ{});
    auto sK = make_tensor(make_smem_ptr(smem.k.data()), SmemLayoutKV{});
    auto sV = make_tensor(make_smem_ptr(smem.v.data()), SmemLayoutKV{});
    auto sVt = make_tensor(make_smem_ptr(smem.v.data()), SmemLayoutVt{});

    GmemCopy gmem_copy;
    auto gthr = gmem_copy.get_thread_slice(tid);
    auto tKVc = gthr.partition_S(make_identity_tensor(typename Config::ShapeKV{}));
    auto tKsK = gthr.partition_D(sK);
    auto tVsV = gthr.partition_D(sV);

    typename Config::TiledMma mma;
    auto thr_mma = mma.get_thread_slice(tid);
    // Element-wise shared->register copies, one k-slice ahead of the MMAs.
    auto copy_q = make_tiled_copy_A(Copy_Atom<DefaultCopy, Element>{}, mma);
    auto copy_k = make_tiled_copy_B(Copy_Atom<DefaultCopy, Element>{}, mma);
    auto copy_v = make_tiled_copy_B(Copy_Atom<DefaultCopy, Element>{}, mma);
    auto tSsQ = copy_q.get_thread_slice(tid).partition_S(sQ);
    auto tSsK = copy_k.get_thread_slice(tid).partition_S(sK);
    auto tOsVt = copy_v.get_thread_slice(tid).partition_S(sVt);
    auto tSrQ = thr_mma.partition_fragment_A(sQ);
    auto tSrK = thr_mma.partition_fragment_B(sK);
    auto tOrVt = thr_mma.partition_fragment_B(sVt);
    clear(acc_o);
    auto tScS = thr_mma.partition_C(make_identity_tensor(typename Config::ShapeS{}));

    auto load_q = q.partitioned_load();
    load_q();
    q.negate_if_needed();

    CUTE_NO_UNROLL
    for (int n = blk.n_first; n < blk.n_blocks; ++n) {
      __syncthreads();  // every warp is done with the previous K/V tile
      int const valid_keys = blk.seq.mask.seqlen_k - n * kBlockN;
      copy_rows(gmem_copy, gthr.partition_S(gK(_, _, n)), tKsK, tKVc, valid_keys);
      copy_rows(gmem_copy, gthr.partition_S(gV(_, _, n)), tVsV, tKVc, valid_keys);
      __syncthreads();  // the tile is in shared memory

      auto acc_s = partition_fragment_C(mma, typename Config::ShapeS{});
      clear(acc_s);
      gemm_ss(acc_s, tSrQ, tSrK, tSsQ, tSsK, mma, copy_q, copy_k, tid);
      if (p.softcap_scale != 0.f) apply_softcap(acc_s, p.softcap_scale);
      if (blk.needs_mask(n)) apply_mask<Config::kCausal>(acc_s, tScS, blk.seq.mask, blk.row0, n * kBlockN);
      softmax.update(n == blk.n_first, acc_s, acc_o, p.scale_log2_abs);
      pv_product<Element>(acc_o, acc_s, tOrVt, tOsVt, mma, copy_v, tid);
    }
  }
};

}  // namespace flashcore::sm80
