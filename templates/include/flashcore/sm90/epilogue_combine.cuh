// Split-KV epilogue: the kSplits CTAs of a cluster each hold a partial result of one query tile
// (softmax over their share of its key tiles). Each normalises its O and stages it (fp32) with
// its per-row LSE in its own shared memory; after a cluster barrier, CTA r combines rows
// [r, r + 1) * kBlockM / kSplits of the tile from every partial, read through distributed shared
// memory (no workspace, no second kernel):
//   LSE = log sum_s exp(LSE_s),   O = sum_s exp(LSE_s - LSE) * O_s,
// and stores O (16-byte vectors, predicated on the sequence's rows and the call's head dim) and
// LSE. A second cluster barrier keeps every CTA's shared memory alive until all have read it.
// Every thread of the CTA passes both barriers: the producer warpgroup through producer_finish.
#pragma once

#include <cute/arch/cluster_sm90.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_conversion.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/pack_gqa.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

// One row's combine over kSplits partials, kChunk (8) columns of it: with the partial LSEs
// (natural log; -inf: a share without keys) and normalised partial O,
//   LSE = log sum_s exp(LSE_s),   O = sum_s exp(LSE_s - LSE) * O_s.
// lse(s) reads share s's LSE of the row, o4(s, col) its 4 floats from chunk column col (0 or 4).
// Returns LSE (+inf when no share saw a key: O = 0 then, as unsplit).
template <int kSplits, int kChunk, class LoadLse, class LoadO4>
CUTE_DEVICE float combine_partials(LoadLse const& lse, LoadO4 const& o4, cutlass::Array<float, kChunk>& acc) {
  static_assert(kChunk == 8, "two 4-float vectors per chunk");
  float weight[kSplits];
  float m = -INFINITY;
  CUTE_UNROLL
  for (int s = 0; s < kSplits; ++s) {
    weight[s] = lse(s);
    m = fmaxf(m, weight[s]);
  }
  // Every share is added, also at weight 0: a NaN in a partial O (a NaN value the row sees) must
  // reach the output, as the unsplit kernel's P.V passes it on.
  float total_lse = INFINITY;
  float sum = 0.f;
  CUTE_UNROLL
  for (int s = 0; s < kSplits; ++s) {
    weight[s] = m == -INFINITY ? 0.f : __expf(weight[s] - m);
    sum += weight[s];
  }
  float const inv = sum > 0.f ? 1.f / sum : 0.f;
  if (sum > 0.f) total_lse = m + __logf(sum);
  acc.fill(0.f);
  CUTE_UNROLL
  for (int s = 0; s < kSplits; ++s) {
    float const ws = weight[s] * inv;
    CUTE_UNROLL
    for (int h = 0; h < 2; ++h) {
      float4 const v = o4(s, 4 * h);
      acc[4 * h + 0] += ws * v.x;
      acc[4 * h + 1] += ws * v.y;
      acc[4 * h + 2] += ws * v.z;
      acc[4 * h + 3] += ws * v.w;
    }
  }
  return total_lse;
}

template <class Traits>
struct EpilogueSplitCombine {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using HD = typename Traits::HD;
  static constexpr int kSplits = Traits::kSplits;
  static constexpr int kHeadDim = Traits::kHeadDim;
  static constexpr int kChunk = 8;  // columns per combined vector: one 16-byte store
  static constexpr int kChunks = kHeadDim / kChunk;
  static constexpr int kRowsPerCta = Traits::kBlockM / kSplits;
  static_assert(kSplits >= 2 && Traits::kBlockM % kSplits == 0, "each CTA combines whole rows");
  static_assert(kHeadDim % 32 == 0, "the swizzle below permutes 4-float groups within 8");

  // The fp32 partial O, row-major in the K ring; a row's 4-float groups are XOR-permuted by the
  // row so that the combine's reads of different rows at one column spread over the banks.
  CUTE_DEVICE static int o_index(int row, int col) {
    return row * kHeadDim + ((((col >> 2) ^ (row & 7))) << 2) + (col & 3);
  }

  template <class AccO, class Softmax>
  CUTE_DEVICE static void store(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid,
                                AccO& tOrO, Softmax& softmax) {
    typename Traits::TiledMmaPV tiled_mma_pv;
    auto thr_pv = tiled_mma_pv.get_thread_slice(tid);
    constexpr int kRows = decltype(size<0>(rowcol(tOrO)))::value;
    float lse[kRows];
    Tensor o_rc = rowcol(tOrO);
    softmax.finalize(o_rc, lse);  // rows that saw no key: O = 0, LSE = +inf

    Tensor tOcO = rowcol(thr_pv.partition_C(make_identity_tensor(Shape<BM, HD>{})));
    float* o_part = reinterpret_cast<float*>(ss.k.data());
    // Every consumer warpgroup's last QK^T has read the K ring before it is overwritten.
    cutlass::arch::NamedBarrier::sync(Traits::kConsumerThreads, uint32_t(NamedBarriers::kEpilogue));
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      int const row = get<0>(tOcO(i, 0));
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o_rc); ++j) o_part[o_index(row, get<1>(tOcO(i, j)))] = o_rc(i, j);
      // A partial without keys weighs nothing in the combine: LSE -inf.
      if (get<1>(tOcO(0, 0)) == 0) ss.lse_part[row] = lse[i] == INFINITY ? -INFINITY : lse[i];
    }
    cute::cluster_arrive();  // release: this CTA's partial is visible to the cluster
    cute::cluster_wait();
    combine(p, ss, w, seq, tid);
    cute::cluster_arrive();  // this CTA has read every partial it needs
    cute::cluster_wait();
  }

  CUTE_DEVICE static void combine(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq, int tid) {
    uint32_t const o_local = cute::cast_smem_ptr_to_uint(ss.k.data());
    uint32_t const lse_local = cute::cast_smem_ptr_to_uint(&ss.lse_part[0]);
    uint32_t o_addr[kSplits], lse_addr[kSplits];
    CUTE_UNROLL
    for (int s = 0; s < kSplits; ++s) {
      o_addr[s] = cluster_shared_address(o_local, uint32_t(s));
      lse_addr[s] = cluster_shared_address(lse_local, uint32_t(s));
    }
    int const row0 = w.m_block * Traits::kBlockM;
    Element* o_head = p.o + int64_t(seq.q_start) * p.o_row_stride + int64_t(w.head) * p.o_head_stride +
                      (p.seq.packed() ? 0 : int64_t(w.batch) * p.o_batch_stride);
    float* lse_ptr = p.lse + seq.lse_offset;
    cutlass::NumericArrayConverter<Element, float, kChunk> convert;
    CUTE_NO_UNROLL
    for (int item = tid; item < kRowsPerCta * kChunks; item += Traits::kConsumerThreads) {
      int const row = w.split * kRowsPerCta + item / kChunks;  // in the tile
      int const c = item % kChunks;
      if constexpr (Traits::kPackGqa) {
        if (!PackedRows(p.head_ratio, w.m_block, Traits::kBlockM).valid(row, seq.seqlen_q)) continue;
      } else {
        if (row0 + row >= seq.seqlen_q) continue;
      }
      cutlass::Array<float, kChunk> acc;
      float const total_lse = combine_partials<kSplits>(
          [&](int s) { return ld_cluster_shared(lse_addr[s] + uint32_t(row) * 4u); },
          [&](int s, int col) { return ld_cluster_shared_v4(o_addr[s] + uint32_t(o_index(row, c * kChunk + col)) * 4u); },
          acc);
      if constexpr (Traits::kPackGqa) {
        store_packed<Traits::kBlockM>(p, w, seq, row, c, convert(acc), total_lse);
        continue;
      }
      if (c * kChunk < p.head_dim_v) {
        cutlass::Array<Element, kChunk> out = convert(acc);
        *reinterpret_cast<uint4*>(o_head + int64_t(row0 + row) * p.o_row_stride + c * kChunk) =
            *reinterpret_cast<uint4 const*>(&out);
      }
      if (c == 0) lse_ptr[row0 + row] = total_lse;
    }
  }

  // The producer warpgroup's share of the two cluster barriers (all its threads, converged).
  CUTE_DEVICE static void producer_finish() {
    __syncwarp();
    cute::cluster_arrive();
    cute::cluster_wait();
    cute::cluster_arrive();
    cute::cluster_wait();
  }

  CUTE_DEVICE static void finish(int /*tid*/) {}
};

}  // namespace flashcore::sm90
