// Epilogue: normalise O, write LSE (fp32, natural log, (B, H, Sq)) for valid rows straight from
// registers, stage O (bf16/fp16) in smem with STSM, then one thread TMA-stores the tile. TMA
// clips rows >= seqlen_q, so they are never written.
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
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, int tid, AccO& tOrO,
                                Softmax& softmax) {
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
      float* lse_ptr = p.lse + (int64_t(w.batch) * p.geo.heads + w.head) * p.seqlen_q;
      CUTE_UNROLL
      for (int i = 0; i < kRows; ++i) {
        int row = row0 + get<0>(tOcO(i, 0));
        if (row < p.seqlen_q) lse_ptr[row] = lse[i];
      }
    }

    // O -> smem: its own buffer, free once the previous tile's store has read it; or Q's buffer,
    // free because this WG's QK^T wgmmas, the only readers of these rows, are done.
    Element* o_smem = Traits::kSeparateO ? ss.o.data() : ss.q.data();
    Tensor sO = make_tensor(make_smem_ptr(o_smem), typename Traits::SmemLayoutO{});
    if constexpr (Traits::kSeparateO) {
      if (tid == 0) tma_store_wait<0>();
      cutlass::arch::NamedBarrier::sync(Traits::kConsumerThreads, uint32_t(NamedBarriers::kEpilogue));
    }
    Tensor rO = convert_fragment<Element>(tOrO);
    auto smem_copy = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, tiled_mma_pv);
    auto thr_copy = smem_copy.get_thread_slice(tid);
    Tensor tRrO = thr_copy.retile_S(rO);
    Tensor tRsO = thr_copy.partition_D(sO);
    copy(smem_copy, tRrO, tRsO);
    cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to the TMA engine
    cutlass::arch::NamedBarrier::sync(Traits::kConsumerThreads, uint32_t(NamedBarriers::kEpilogue));

    if (tid == 0) {
      Tensor mO = p.tma_o.get_tma_tensor(p.shape_q);
      Tensor gO = local_tile(mO(_, _, w.head, w.batch), Shape<BM, HD>{}, make_coord(w.m_block, _0{}));
      auto cta_tma = p.tma_o.get_slice(_0{});
      copy(p.tma_o, cta_tma.partition_S(sO), cta_tma.partition_D(gO));
      tma_store_arrive();
      if constexpr (!Traits::kSeparateO) {
        tma_store_wait<0>();  // smem read done: the Q/O buffer may be refilled, the CTA may exit
        cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);
      }
    }
  }

  // After the last tile: the CTA may exit only once its last O store has read shared memory.
  CUTE_DEVICE static void finish(int tid) {
    if constexpr (Traits::kSeparateO) {
      if (tid == 0) tma_store_wait<0>();
    }
  }
};

}  // namespace flashcore::sm90
