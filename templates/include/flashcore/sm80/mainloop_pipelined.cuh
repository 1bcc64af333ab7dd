// The "pipelined" family's mainloop (roadmap steps 3-5): K/V tiles stream through a kStages-slot
// cp.async ring that overlaps loads with both GEMMs; shared memory is swizzled and read with
// ldmatrix; 128-bit copies; loops fully unrolled. kLean trades a few instructions for registers
// (see PipelinedConfig): K slices of QK^T are streamed and the K/V copy addresses recomputed.
#pragma once

#include "flashcore/sm80/common.cuh"
#include "flashcore/sm80/softmax.cuh"

namespace flashcore::sm80 {

template <class Config_, int kStages, bool kLean>
struct MainloopPipelined {
  using Config = Config_;
  using Element = typename Config::Element;
  static constexpr int kHeadDim = Config::kHeadDim;
  static constexpr int kBlockM = Config::kBlockM;
  static constexpr int kBlockN = Config::kBlockN;

  // 8x64 swizzled atom: ldmatrix and 128-bit cp.async rows hit distinct banks.
  using SmemAtom = decltype(composition(Swizzle<3, 3, 3>{}, Layout<Shape<_8, _64>, Stride<_64, _1>>{}));
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockM>, Int<kHeadDim>>{}));
  using SmemLayoutKV = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kHeadDim>, Int<kStages>>{}));
  // V read as V^T (head_dim x keys) for the PV product, same bytes.
  using SmemLayoutVt = decltype(composition(
      SmemLayoutKV{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{},
                                  Stride<Int<kBlockN>, _1, Int<kBlockN * kHeadDim>>{})));

  struct SharedStorage {
    array_aligned<Element, cosize_v<SmemLayoutQ>, 128> q;  // reused for O in the epilogue
    array_aligned<Element, cosize_v<SmemLayoutKV>, 128> k;
    array_aligned<Element, cosize_v<SmemLayoutKV>, 128> v;
  };

  using GmemCopy = GmemTiledCopy<SM80_CP_ASYNC_CACHEGLOBAL<uint128_t>, Config>;

  // Every warp passes the barrier after its last QK^T before the loop ends.
  static constexpr bool kSmemQFreeAfterLoop = true;

  // Q is loaded by cp.async too, committed with the group of K_0.
  CUTE_DEVICE static void wait_q() { cp_async_wait<0>(); }

  // gK, gV: the block's K and V tiles in global memory (N, D, n).
  template <class Block, class GmemKV, class QTile, class AccO, class Softmax>
  CUTE_DEVICE static void run(FwdParams const& p, Block const& blk, SharedStorage& smem, int tid, GmemKV const& gK,
                              GmemKV const& gV, QTile const& q, AccO& acc_o, Softmax& softmax) {
    auto sQ = make_tensor(make_smem_ptr(smem.q.data()), SmemLayoutQ{});
    auto sK = make_tensor(make_smem_ptr(smem.k.data()), SmemLayoutKV{});   // (N, D, slot)
    auto sV = make_tensor(make_smem_ptr(smem.v.data()), SmemLayoutKV{});
    auto sVt = make_tensor(make_smem_ptr(smem.v.data()), SmemLayoutVt{});  // (D, N, slot)

    // Global -> shared: cp.async; the Q copy is partitioned here and issued in the prologue.
    GmemCopy gmem_copy;
    auto gthr = gmem_copy.get_thread_slice(tid);
    auto load_q = q.partitioned_load();
    // load_k(n) / load_v(n): K or V tile n -> ring slot n % kStages, one cp.async group per tile
    // (empty past the last tile: keeps the wait counts uniform).
    auto make_loader = [&](auto const& gX, auto const& sX) {
      if constexpr (kLean) {
        // This thread's copy partition is rebuilt from a fresh thread index at each call instead
        // of staying live across the mainloop (registers the 192-accumulator tiles lack).
        return [&](int n) {  // gX, sX: references to this function's gK, sK or gV, sV
          if (n < blk.n_blocks) {
            auto thr = gmem_copy.get_thread_slice(fresh_thread_idx());
            copy_rows(gmem_copy, thr.partition_S(gX(_, _, n)), thr.partition_D(sX(_, _, n % kStages)),
                      thr.partition_S(make_identity_tensor(typename Config::ShapeKV{})), blk.seq.mask.seqlen_k - n * kBlockN);
          }
          cp_async_fence();
        };
      } else {
        auto tXgX = gthr.partition_S(gX);  // (CPY, CPY_N, CPY_D, n)
        auto tXsX = gthr.partition_D(sX);  // (CPY, CPY_N, CPY_D, slot)
        auto tXcX = gthr.partition_S(make_identity_tensor(typename Config::ShapeKV{}));
        return [&, tXgX, tXsX, tXcX](int n) {
          if (n < blk.n_blocks) {
            copy_rows(gmem_copy, tXgX(_, _, _, n), tXsX(_, _, _, n % kStages), tXcX, blk.seq.mask.seqlen_k - n * kBlockN);
          }
          cp_async_fence();
        };
      }
    };
    auto load_k = make_loader(gK, sK);
    auto load_v = make_loader(gV, sV);

    // Shared -> registers: ldmatrix (transposed for V), feeding the warp-level MMAs.
    typename Config::TiledMma mma;
    auto thr_mma = mma.get_thread_slice(tid);
    auto copy_q = make_tiled_copy_A(Copy_Atom<SM75_U32x4_LDSM_N, Element>{}, mma);
    auto copy_k = make_tiled_copy_B(Copy_Atom<SM75_U32x4_LDSM_N, Element>{}, mma);
    auto copy_v = make_tiled_copy_B(Copy_Atom<SM75_U16x8_LDSM_T, Element>{}, mma);
    auto tSsQ = copy_q.get_thread_slice(tid).partition_S(sQ);
    auto tSsK = copy_k.get_thread_slice(tid).partition_S(sK);    // (CPY, N, K, slot)
    auto tOsVt = copy_v.get_thread_slice(tid).partition_S(sVt);  // (CPY, D, N, slot)
    auto tSrQ = thr_mma.partition_fragment_A(sQ);
    auto tSrK = thr_mma.partition_fragment_B(sK(_, _, 0));
    auto tOrVt = thr_mma.partition_fragment_B(sVt(_, _, 0));
    clear(acc_o);
    auto tScS = thr_mma.partition_C(make_identity_tensor(typename Config::ShapeS{}));

    // Prologue. cp.async groups are committed in the order K0(+Q) V0 K1 V1 ... so that
    // "K_n ready" and "V_n ready" are both "at most 2*kStages-2 groups still in flight".
    load_q();
    int const n0 = blk.n_first;  // a left window skips the key tiles before it
    load_k(n0);
    CUTE_UNROLL
    for (int s = 0; s + 1 < kStages; ++s) {
      load_v(n0 + s);
      load_k(n0 + s + 1);
    }
    q.negate_if_needed();

    CUTE_NO_UNROLL
    for (int n = n0; n < blk.n_blocks; ++n) {
      int const slot = n % kStages;
      cp_async_wait<2 * kStages - 2>();
      __syncthreads();  // K_n visible; every warp is past PV_{n-1}, so V slot (n-1) is free
      load_v(n + kStages - 1);

      auto acc_s = partition_fragment_C(mma, typename Config::ShapeS{});
      clear(acc_s);
      gemm_ss<kLean>(acc_s, tSrQ, tSrK, tSsQ, tSsK(_, _, _, slot), mma, copy_q, copy_k, tid);
      if (p.softcap_scale != 0.f) apply_softcap(acc_s, p.softcap_scale);
      if (blk.needs_mask(n)) apply_mask<Config::kCausal>(acc_s, tScS, blk.seq.mask, blk.row0, n * kBlockN);

      cp_async_wait<2 * kStages - 2>();
      __syncthreads();  // V_n visible; every warp is past QK_n, so K slot n is free
      load_k(n + kStages);

      softmax.update(n == blk.n_first, acc_s, acc_o, p.scale_log2_abs);
      pv_product<Element>(acc_o, acc_s, tOrVt, tOsVt(_, _, _, slot), mma, copy_v, tid);
    }
    cp_async_wait<0>();  // nothing in flight past the mainloop
  }
};

}  // namespace flashcore::sm80
