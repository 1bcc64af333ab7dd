// Split-KV epilogue through global memory: the kSplits CTAs of one query tile (no cluster: any
// split count, no gang launch) each normalise their partial O and write it (fp32) with the
// per-row LSE to the call's scratch; the last of them to finish (a per-tile counter) reads every
// partial back and combines them as EpilogueSplitCombine does (combine_partials):
//   LSE = log sum_s exp(LSE_s),   O = sum_s exp(LSE_s - LSE) * O_s.
// Scratch (FwdParams::workspace, SplitGlobalWorkspace): the counters, zeroed by the launch, then
// the partial LSEs and O, which every CTA writes before any is read. Rows past the sequence are
// neither written nor read, so a decoding tile of a few rows moves a few rows.
#pragma once

#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_conversion.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/epilogue_combine.cuh"
#include "flashcore/sm90/pack_gqa.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

// Layout of the scratch: int counter[tiles] (padded to 256 B), float lse[tiles][kSplits][kBlockM],
// float o[tiles][kSplits][kBlockM][kHeadDim]. Only the counters need zeros.
template <int kSplits, int kBlockM, int kHeadDim>
struct SplitGlobalWorkspace {
  static constexpr size_t kAlign = 256;
  CUTE_HOST_DEVICE static size_t counter_bytes(TileGeometry const& g) {
    return (size_t(g.num_tiles) * sizeof(int) + kAlign - 1) / kAlign * kAlign;
  }
  CUTE_HOST_DEVICE static size_t lse_bytes(TileGeometry const& g) {
    return (size_t(g.num_tiles) * kSplits * kBlockM * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  }
  static size_t bytes(TileGeometry const& g) {
    return counter_bytes(g) + lse_bytes(g) + size_t(g.num_tiles) * kSplits * kBlockM * kHeadDim * sizeof(float);
  }
  static size_t zeroed_bytes(TileGeometry const& g) { return counter_bytes(g); }
  CUTE_DEVICE static int* counters(void* ws) { return static_cast<int*>(ws); }
  CUTE_DEVICE static float* lse(void* ws, TileGeometry const& g) {
    return reinterpret_cast<float*>(static_cast<char*>(ws) + counter_bytes(g));
  }
  CUTE_DEVICE static float* o(void* ws, TileGeometry const& g) {
    return reinterpret_cast<float*>(static_cast<char*>(ws) + counter_bytes(g) + lse_bytes(g));
  }
};

// The parts of a combine through global scratch that split-KV (here) and stream-K (stream_k.cuh) share.
//
// A CTA's normalised partial O (fp32, rows of ld floats from o) and per-row LSE (from lse_out; -inf
// for a row that saw no key, which then weighs nothing in the combine), rows below `rows` only.
// Adjacent accumulator columns (j, j + 1) are one thread's: 8-byte stores. kBypassL1: st.global.cg.
template <bool kBypassL1, int kRows, class ORowCol, class CoordRowCol>
CUTE_DEVICE void store_partial(ORowCol const& o_rc, float const (&lse)[kRows], CoordRowCol const& tOcO, int rows,
                               int ld, float* o, float* lse_out) {
  CUTE_UNROLL
  for (int i = 0; i < kRows; ++i) {
    int const row = get<0>(tOcO(i, 0));
    if (row >= rows) continue;
    CUTE_UNROLL
    for (int j = 0; j < size<1>(o_rc); j += 2) {
      float2* const dst = reinterpret_cast<float2*>(o + row * ld + get<1>(tOcO(i, j)));
      float2 const v = make_float2(o_rc(i, j), o_rc(i, j + 1));
      if constexpr (kBypassL1) __stcg(dst, v);
      else *dst = v;
    }
    if (get<1>(tOcO(0, 0)) == 0) {
      float const l = lse[i] == INFINITY ? -INFINITY : lse[i];
      if constexpr (kBypassL1) __stcg(lse_out + row, l);
      else lse_out[row] = l;
    }
  }
}

// Release this CTA's partial (visible device-wide before its arrival is counted), count the arrival on
// *counter and tell every consumer thread whether it was the last of `parts`: that CTA owns the combine
// and has acquired every other partial (it reads them past L1). on_arrive runs in the counting thread.
template <class Traits, class SS, class OnArrive>
CUTE_DEVICE bool last_to_arrive(SS& ss, int* counter, int parts, int tid, OnArrive const& on_arrive) {
  __threadfence();
  cutlass::arch::NamedBarrier::sync(Traits::kConsumerThreads, uint32_t(NamedBarriers::kEpilogue));
  int* last_flag = &ss.next_tile[0];  // the dynamic scheduler's slot, unused by these epilogues' kernels
  if (tid == 0) {
    *last_flag = atomicAdd(counter, 1) == parts - 1;
    on_arrive();
  }
  cutlass::arch::NamedBarrier::sync(Traits::kConsumerThreads, uint32_t(NamedBarriers::kEpilogue));
  if (!*last_flag) return false;
  __threadfence();  // acquire: the other partials
  return true;
}

// Row `row`, chunk c (kChunk columns) of the combine of kParts partials store_partial wrote, partial s
// at lse + s * kBlockM and o + s * kBlockM * ld; returns the row's LSE.
template <int kParts, int kBlockM, int kChunk>
CUTE_DEVICE float combine_stored(float const* lse, float const* o, int ld, int row, int c,
                                 cutlass::Array<float, kChunk>& acc) {
  return combine_partials<kParts>(
      [&](int s) { return __ldcg(lse + s * kBlockM + row); },
      [&](int s, int col) {
        return __ldcg(reinterpret_cast<float4 const*>(o + (int64_t(s) * kBlockM + row) * ld + c * kChunk + col));
      },
      acc);
}

template <class Traits>
struct EpilogueSplitGlobal {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using HD = typename Traits::HD;
  static constexpr int kSplits = Traits::kSplits;
  static constexpr int kBlockM = Traits::kBlockM;
  static constexpr int kHeadDim = Traits::kHeadDim;
  static constexpr int kChunk = 8;  // columns per combined vector: one 16-byte store
  static constexpr int kChunks = kHeadDim / kChunk;
  using Workspace = SplitGlobalWorkspace<kSplits, kBlockM, kHeadDim>;
  static_assert(kSplits >= 2, "a split-KV epilogue");

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
    int const row0 = w.m_block * kBlockM;
    // Rows of this tile in the sequence (packed: a prefix holding every valid row).
    int rows;
    if constexpr (Traits::kPackGqa) rows = PackedRows(p.head_ratio, w.m_block, kBlockM).row_extent(seq.seqlen_q, kBlockM);
    else rows = min(kBlockM, seq.seqlen_q - row0);
    int64_t const part = int64_t(w.linear) * kSplits;   // share 0 of this tile in the scratch
    float* lse_part = Workspace::lse(p.workspace, p.geo) + part * kBlockM;
    float* o_part = Workspace::o(p.workspace, p.geo) + part * kBlockM * kHeadDim;
    store_partial<false>(o_rc, lse, tOcO, rows, kHeadDim, o_part + int64_t(w.split) * kBlockM * kHeadDim,
                         lse_part + w.split * kBlockM);
    if (!last_to_arrive<Traits>(ss, Workspace::counters(p.workspace) + w.linear, kSplits, tid, [] {})) return;

    Element* o_head = p.o + int64_t(seq.q_start) * p.o_row_stride + int64_t(w.head) * p.o_head_stride +
                      (p.seq.packed() ? 0 : int64_t(w.batch) * p.o_batch_stride);
    float* lse_ptr = p.lse + seq.lse_offset;
    cutlass::NumericArrayConverter<Element, float, kChunk> convert;
    CUTE_NO_UNROLL
    for (int item = tid; item < rows * kChunks; item += Traits::kConsumerThreads) {
      int const row = item / kChunks;  // in the tile
      int const c = item % kChunks;
      cutlass::Array<float, kChunk> acc;
      float const total_lse = combine_stored<kSplits, kBlockM>(lse_part, o_part, kHeadDim, row, c, acc);
      if constexpr (Traits::kPackGqa) {
        if (PackedRows(p.head_ratio, w.m_block, kBlockM).valid(row, seq.seqlen_q)) {
          store_packed<kBlockM>(p, w, seq, row, c, convert(acc), total_lse);
        }
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

  CUTE_DEVICE static void producer_finish() {}
  CUTE_DEVICE static void finish(int /*tid*/) {}
};

}  // namespace flashcore::sm90
