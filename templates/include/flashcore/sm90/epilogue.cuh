// Epilogue: normalise O, write LSE (fp32, natural log, (B, H, Sq)) for valid rows straight from
// registers, stage O (bf16/fp16) in smem with STSM, then one thread TMA-stores it: the whole tile,
// or with kStorePerWG each consumer WG's own 64 rows (its leader thread, after a WG-local sync).
// TMA clips rows >= seqlen_q, so they are never written.
#pragma once

#include <cute/arch/copy_sm90.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/pack_gqa.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

template <class Traits>
struct EpilogueTmaStore {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using HDV = typename Traits::HDV;  // O's head dim (V's)

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
    Tensor cO = make_identity_tensor(Shape<BM, HDV>{});
    Tensor tOcO = rowcol(thr_pv.partition_C(cO));
    int const row0 = w.m_block * Traits::kBlockM;
    if (get<1>(tOcO(0, 0)) == 0) {
      if constexpr (Traits::kPackGqa) {
        PackedRows const rows(p.head_ratio, w.m_block, Traits::kBlockM);
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) {
          int const r = get<0>(tOcO(i, 0));
          if (rows.valid(r, seq.seqlen_q)) *packed_lse_at(p, w, seq, rows, r) = lse[i];
        }
      } else {
        float* lse_ptr = p.lse + seq.lse_offset;
        CUTE_UNROLL
        for (int i = 0; i < kRows; ++i) {
          int row = row0 + get<0>(tOcO(i, 0));
          if (row < seq.seqlen_q) lse_ptr[row] = lse[i];
        }
      }
    }

    // O -> smem: its own buffer, free once the previous tile's store has read it; or the V ring,
    // free once every consumer WG's last PV is done (the producer loads no V of the next tile
    // before bar_o); or Q's buffer, free because this WG's QK^T wgmmas, the only readers of these
    // rows, are done.
    Element* o_smem = Traits::kSeparateO ? ss.o.data() : Traits::kOInV ? ss.v.data() : ss.q.data();
    Tensor sO = make_tensor(make_smem_ptr(o_smem), typename Traits::SmemLayoutO{});
    // One store covers a slice of kStoreRows rows: a WG's 64 (slice = its index), or the whole
    // tile (one slice). Its threads: store_tid 0 .. kStoreRows * 2 - 1; thread 0 issues the TMA store.
    constexpr int kStoreRows = Traits::kStorePerWG ? 64 : Traits::kBlockM;
    int const slice = Traits::kStorePerWG ? tid / 128 : 0;
    int const store_tid = tid - slice * 2 * kStoreRows;
    auto sync_writers = [&] {
      if constexpr (Traits::kStorePerWG) {
        cutlass::arch::NamedBarrier::sync(128, uint32_t(NamedBarriers::kEpilogueWg0) + uint32_t(slice));
      } else {
        cutlass::arch::NamedBarrier::sync(Traits::kEpilogueThreads, uint32_t(NamedBarriers::kEpilogue));
      }
    };
    if constexpr (Traits::kSeparateO) {
      // The previous tile's store of this slice must have read it before it is overwritten.
      if (store_tid == 0) tma_store_wait<0>();
      sync_writers();
    } else if constexpr (Traits::kOInV) {
      sync_writers();
    }
    Tensor rO = convert_fragment<Element>(tOrO);
    auto smem_copy = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, tiled_mma_pv);
    auto thr_copy = smem_copy.get_thread_slice(tid);
    Tensor tRrO = thr_copy.retile_S(rO);
    Tensor tRsO = thr_copy.partition_D(sO);
    copy(smem_copy, tRrO, tRsO);
    cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to the TMA engine
    sync_writers();

    int const store_row0 = row0 + slice * kStoreRows;
    Tensor sO_store = make_tensor(make_smem_ptr(o_smem + slice * kStoreRows * Traits::kHeadDimV),
                                  typename Traits::SmemLayoutOStore{});
    if (!Traits::kPackGqa && p.seq.packed() && store_row0 + kStoreRows > seq.seqlen_q) {
      // The last tile of a packed sequence: a TMA store of the whole tile would write past the
      // sequence's last row into the next one's; the threads store the valid rows (and head-dim
      // columns) instead. Full tiles take the TMA store below.
      store_rows<kStoreRows>(p, seq, store_row0, w.head, sO_store, store_tid);
      if constexpr (!Traits::kSeparateO) {  // the staging buffer (Q's or V's) may be refilled
        sync_writers();
        if (tid == 0) cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);  // every thread is done reading sO
      }
      return;
    }
    if constexpr (Traits::kPackGqa) {  // the group's rows: one 5-D box per 64 columns (pack_gqa.cuh)
      PackedRows const rows(p.head_ratio, w.m_block, Traits::kBlockM);
      if (p.seq.packed() && rows.s_first + rows.queries(Traits::kBlockM) > seq.seqlen_q) {
        // The last tile of a packed sequence: a box would write into the next sequence's rows.
        store_packed_rows<Traits::kConsumerThreads, Traits::kBlockM, Traits::kHeadDim>(p, w, seq, sO, tid);
        sync_writers();  // every thread is done reading sO: Q's buffer may be refilled
        if (tid == 0) cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);
        return;
      }
      if (store_tid == 0) {
        CUTE_UNROLL
        for (int j = 0; j < Traits::kHeadDim / 64; ++j) {
          SM90_TMA_STORE_5D::copy(p.tma_o.get_tma_descriptor(), o_smem + j * Traits::kBlockM * 64, j * 64, 0,
                                  packed_row_coord(seq, rows), w.head, packed_batch_coord(p, w));
        }
        tma_store_arrive();
        tma_store_wait<0>();  // smem read done: the Q buffer may be refilled, the CTA may exit
        cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);
      }
      return;
    }
    if (store_tid == 0) {
      Tensor mO = p.tma_o.get_tma_tensor(p.shape_q);
      Tensor gO = local_tile(domain_offset(make_coord(seq.q_start, _0{}), mO(_, _, w.head, p.seq.packed() ? 0 : w.batch)),
                             Shape<Int<kStoreRows>, HDV>{},
                             make_coord(w.m_block * (Traits::kBlockM / kStoreRows) + slice, _0{}));
      auto cta_tma = p.tma_o.get_slice(_0{});
      copy(p.tma_o, cta_tma.partition_S(sO_store), cta_tma.partition_D(gO));
      tma_store_arrive();
      if constexpr (!Traits::kSeparateO) {
        tma_store_wait<0>();  // smem read done: the Q or V buffer may be refilled, the CTA may exit
        cutlass::arch::ClusterBarrier::arrive(&ss.bar_o);
      }
    }
  }

  // O rows [row0, seqlen_q) of the tile, columns below the call's head dim, from smem to global
  // memory in 16-byte vectors (a row is kHeadDimV / 8 of them; the head dim is a multiple of 8).
  // The threads span a whole row where they divide it evenly, else 8 vectors of it (64 columns;
  // the head dim is a multiple of 64), e.g. 24 vectors a row at D192.
  // kRows: the rows sO holds (a WG's 64 or the tile's), stored by as many threads as rows / 2
  // (tid: 0 .. kRows / 2 - 1), i.e. by that WG or by every consumer thread.
  template <int kRows, class SmemO>
  CUTE_DEVICE static void store_rows(Params const& p, SeqSpan const& seq, int row0, int head, SmemO const& sO, int tid) {
    constexpr int kThreads = kRows * 2;
    constexpr int kRowVecs = Traits::kHeadDimV / 8;
    constexpr bool kWholeRow = kThreads % kRowVecs == 0 && kRows % (kThreads / kRowVecs) == 0;
    constexpr int kVecsPerRow = kWholeRow ? kRowVecs : 8;
    static_assert(kThreads % kVecsPerRow == 0 && kRows % (kThreads / kVecsPerRow) == 0);
    using ThreadLayout = Layout<Shape<Int<kThreads / kVecsPerRow>, Int<kVecsPerRow>>, Stride<Int<kVecsPerRow>, _1>>;
    auto gmem_copy = make_tiled_copy(Copy_Atom<UniversalCopy<uint128_t>, Element>{}, ThreadLayout{}, Layout<Shape<_1, _8>>{});
    Element* base = p.o + int64_t(seq.q_start + row0) * p.o_row_stride + int64_t(head) * p.o_head_stride;
    Tensor gO = make_tensor(make_gmem_ptr(base), make_layout(Shape<Int<kRows>, HDV>{}, make_stride(p.o_row_stride, _1{})));
    auto thr = gmem_copy.get_thread_slice(tid);
    Tensor tOsO = thr.partition_S(sO);
    Tensor tOgO = thr.partition_D(gO);
    Tensor tOcO = thr.partition_D(make_identity_tensor(Shape<Int<kRows>, HDV>{}));
    int const rows = seq.seqlen_q - row0;
    CUTE_UNROLL
    for (int m = 0; m < size<1>(tOsO); ++m) {
      CUTE_UNROLL
      for (int k = 0; k < size<2>(tOsO); ++k) {
        if (get<0>(tOcO(0, m, k)) < rows && get<1>(tOcO(0, m, k)) < p.head_dim_v) {
          copy(gmem_copy, tOsO(_, m, k), tOgO(_, m, k));
        }
      }
    }
  }

  // The producer warpgroup's part in the epilogue: none (see EpilogueSplitCombine).
  CUTE_DEVICE static void producer_finish() {}

  // After the last tile: the CTA may exit only once its last O store has read shared memory.
  CUTE_DEVICE static void finish(int tid) {
    if constexpr (Traits::kSeparateO) {
      if (tid % 128 == 0) tma_store_wait<0>();  // each WG's leader issued its own stores
    }
  }
};

}  // namespace flashcore::sm90
