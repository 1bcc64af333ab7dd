// GQA packing for any query length (FlashAttention-3's PackGQA): the G query heads that share a
// K/V head become the rows of one 64-row tile, query-major: tile row r holds query
// s_first + r / Gp of query head hkv * G + r % Gp, Gp = G rounded up to a power of two (rows with
// r % Gp >= G are padding: zero Q, never stored). A tile then holds 64 / Gp queries of every head
// of the group, so a K/V head is read once per query tile instead of G times, and calls with few
// queries per head (speculative decoding, chunked prefill of short chunks) fill their tiles.
// Each row keeps its own query position for the mask (causal alignments, windows).
// Q loads and O stores are one 5-D TMA box per 64 columns: the tensor (D, G, Sq, Hkv, B) with box
// (64, Gp, 64 / Gp, 1, 1), whose shared-memory image is the tile's row-major swizzled block (TMA
// zero-fills g >= G and s >= Sq on load and clips them on store).
#pragma once

#include <type_traits>

#include <cute/arch/copy_sm90_desc.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/array.h>
#include <cutlass/cuda_host_adapter.hpp>

#include "flashcore/api.h"
#include "flashcore/sm90/tile_scheduler.cuh"

namespace flashcore::sm90 {

// log2 of the row slots a group takes (G rounded up to a power of two).
CUTE_HOST_DEVICE int pack_slots_log2(int group) {
  int s = 0;
  while ((1 << s) < group) ++s;
  return s;
}

// Tile row -> (query head in its group, query position) of a packed tile.
struct PackedRows {
  int group;    // G: query heads per K/V head
  int shift;    // log2(Gp)
  int s_first;  // the tile's first query
  CUTE_DEVICE PackedRows(int group_, int m_block, int block_m)
      : group(group_), shift(pack_slots_log2(group_)), s_first(m_block * (block_m >> pack_slots_log2(group_))) {}
  CUTE_DEVICE int queries(int block_m) const { return block_m >> shift; }  // per tile
  CUTE_DEVICE int head_in_group(int r) const { return r & ((1 << shift) - 1); }
  CUTE_DEVICE int query(int r) const { return s_first + (r >> shift); }
  CUTE_DEVICE bool valid(int r, int seqlen_q) const { return head_in_group(r) < group && query(r) < seqlen_q; }
  // Rows [0, n) of the tile cover every valid one (padding rows inside it included).
  CUTE_DEVICE int row_extent(int seqlen_q, int block_m) const {
    int const n = (seqlen_q - s_first) << shift;
    return n < block_m ? n : block_m;
  }
};

// Where tile row r's results go: its LSE ((B, H, Sq) fp32, or (H, total_q) for packed sequences,
// whose rows start at the sequence's q_start) and its O row.
template <class Params>
CUTE_DEVICE float* packed_lse_at(Params const& p, WorkTile const& w, SeqSpan const& seq, PackedRows const& rows, int r) {
  int64_t const head = int64_t(w.head) * rows.group + rows.head_in_group(r);
  return p.seq.packed() ? p.lse + head * p.seq.total_q + seq.q_start + rows.query(r)
                        : p.lse + (int64_t(w.batch) * p.seq.heads + head) * seq.seqlen_q + rows.query(r);
}
template <class Params>
CUTE_DEVICE auto packed_o_row(Params const& p, WorkTile const& w, SeqSpan const& seq, PackedRows const& rows, int r) {
  return p.o + (p.seq.packed() ? int64_t(0) : int64_t(w.batch) * p.o_batch_stride) +
         int64_t(w.head * rows.group + rows.head_in_group(r)) * p.o_head_stride +
         int64_t(seq.q_start + rows.query(r)) * p.o_row_stride;
}
// The 5-D boxes' row and batch coordinates of a tile: packed sequences are one "batch" of total_q rows.
CUTE_DEVICE int packed_row_coord(SeqSpan const& seq, PackedRows const& rows) {
  return seq.q_start + rows.s_first;
}
template <class Params>
CUTE_DEVICE int packed_batch_coord(Params const& p, WorkTile const& w) {
  return p.seq.packed() ? 0 : w.batch;
}

// A split-KV combine's result for tile row r (valid), columns [c * 8, c * 8 + 8): the O vector
// (below the call's head dim) and, with the first chunk, the row's LSE.
template <int kBlockM, class Params, class Element>
CUTE_DEVICE void store_packed(Params const& p, WorkTile const& w, SeqSpan const& seq, int r, int c,
                              cutlass::Array<Element, 8> const& out, float lse) {
  PackedRows const rows(p.head_ratio, w.m_block, kBlockM);
  if (c * 8 < p.head_dim_v) {
    *reinterpret_cast<uint4*>(packed_o_row(p, w, seq, rows, r) + c * 8) = *reinterpret_cast<uint4 const*>(&out);
  }
  if (c == 0) *packed_lse_at(p, w, seq, rows, r) = lse;
}

// O rows of the last tile of a packed sequence, which a TMA box would write past the sequence's
// rows (into the next one's): the consumer threads (tid < kThreads) store each valid row's 16-byte
// vectors below the call's head dim from the staged tile sO (any smem layout).
template <int kThreads, int kBlockM, int kHeadDim, class Params, class SmemO>
CUTE_DEVICE void store_packed_rows(Params const& p, WorkTile const& w, SeqSpan const& seq, SmemO const& sO, int tid) {
  PackedRows const rows(p.head_ratio, w.m_block, kBlockM);
  constexpr int kChunks = kHeadDim / 8;
  CUTE_NO_UNROLL
  for (int item = tid; item < kBlockM * kChunks; item += kThreads) {
    int const r = item / kChunks, c = item % kChunks;
    if (!rows.valid(r, seq.seqlen_q) || c * 8 >= p.head_dim_v) continue;
    *reinterpret_cast<uint4*>(packed_o_row(p, w, seq, rows, r) + c * 8) =
        *reinterpret_cast<uint4 const*>(raw_pointer_cast(&sO(r, c * 8)));
  }
}

// The 5-D tensor map of q (or o): (head_dim, G, Sq, Hkv, B), strides in elements of head, row,
// head group (G heads) and batch; box (64, Gp, block_m / Gp, 1, 1), 128-byte swizzle (the
// K-major SW128 atom of the tile's shared-memory layout). Returns the driver's result.
template <class Element>
inline CUresult encode_packed_rows_map(cute::TmaDescriptor* desc, void const* base, int head_dim, int group,
                                       int seqlen, int heads_k, int batch, int64_t head_stride, int64_t row_stride,
                                       int64_t batch_stride, int block_m) {
  int const slots = 1 << pack_slots_log2(group);
  constexpr int64_t kBytes = int64_t(sizeof(Element));
  cuuint64_t dims[5] = {cuuint64_t(head_dim), cuuint64_t(group), cuuint64_t(seqlen), cuuint64_t(heads_k),
                        cuuint64_t(batch)};
  cuuint64_t strides[4] = {cuuint64_t(head_stride * kBytes), cuuint64_t(row_stride * kBytes),
                           cuuint64_t(head_stride * group * kBytes), cuuint64_t(batch_stride * kBytes)};
  cuuint32_t box[5] = {64, cuuint32_t(slots), cuuint32_t(block_m / slots), 1, 1};
  cuuint32_t elem_strides[5] = {1, 1, 1, 1, 1};
  return CUTLASS_CUDA_DRIVER_WRAPPER_CALL(cuTensorMapEncodeTiled)(
      desc, cute::TMA::to_CUtensorMapDataType<Element>(), 5, const_cast<void*>(base), dims, strides, box,
      elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

// The traits of a packing variant: Base's tiles and layouts; Q's and O's tensor maps re-encoded
// as packed rows, and a grid of (query tiles of 64 / Gp queries, K/V heads, batch).
template <class Base>
struct PackGqaTraits : Base {
  static constexpr bool kPackGqa = true;
  using Element = typename Base::Element;
  using Params = typename Base::Params;
  static_assert(Base::kBlockM == 64 && !Base::kPersistent && Base::kCtasPerSm == 1,
                "GQA packing: one consumer warpgroup, one query tile per CTA");
  static_assert(Base::kHeadDimV == Base::kHeadDim, "GQA packing: V shares Q's head dim (O takes Q's boxes)");
  static_assert(std::is_same_v<typename Base::SmemAtomQ, GMMA::Layout_K_SW128_Atom<Element>>,
                "the packed tensor maps write the K-major 128-byte-swizzle layout");
  // Q's (and O's) shared-memory image, before the 128-byte swizzle of the addresses (which TMA
  // applies alike): 64-column blocks of block_m rows of 64 elements, one block after the other, as
  // one box per block writes them.
  using LayoutQ = typename Base::SmemLayoutQ;
  static_assert(std::is_same_v<std::decay_t<decltype(LayoutQ{}.layout_a())>, Swizzle<3, 4, 3>>);
  static_assert((Base::kHeadDim == 64 || LayoutQ{}.layout_b()(0, 64) == Base::kBlockM * 64) &&
                    LayoutQ{}.layout_b()(8, 0) == 512 && LayoutQ{}.layout_b()(1, 8) == 72 &&
                    LayoutQ{}.layout_b()(Base::kBlockM - 1, 63) == Base::kBlockM * 64 - 1,
                "shared-memory layout of Q as the packed TMA boxes write it");

  static int group(FwdParams const& p) { return p.heads_k > 0 ? p.heads / p.heads_k : 1; }

  static TileGeometry geometry(FwdParams const& p) {
    int const heads_k = p.heads_k > 0 ? p.heads_k : p.heads;
    int const queries = Base::kBlockM >> pack_slots_log2(group(p));
    return TileGeometry((p.seqlen_q + queries - 1) / queries, heads_k, p.batch);
  }

  // Why a call cannot be packed (nullptr: it can).
  static char const* cannot_pack(FwdParams const& p) {
    if (group(p) > Base::kBlockM)
      return "this variant packs the query heads of a GQA group into the rows of one 64-row tile: at most 64 query "
             "heads per key/value head";
    return nullptr;
  }

  // Base's params with Q's and O's maps as packed rows (the kernel reads p.head_ratio as G and
  // takes its K/V head from the tile). ``result``: the driver's verdict on the two maps.
  static Params make_params(FwdParams const& p, CUresult* result = nullptr) {
    Params params = Base::make_params(p);
    int const heads_k = p.heads_k > 0 ? p.heads_k : p.heads;
    int const d = p.head_dim > 0 ? p.head_dim : Base::kHeadDim;
    int const dv = p.head_dim_v > 0 ? p.head_dim_v : d;
    // Packed sequences: one batch of total_q rows (each tile offsets its sequence's q_start); their
    // batch stride is 0, which TMA refuses: the lone batch index never steps, the row stride does.
    bool const packed = p.cu_seqlens_q != nullptr;
    int const rows = packed ? p.total_q : p.seqlen_q, batch = packed ? 1 : p.batch;
    CUresult r = encode_packed_rows_map<Element>(&params.tma_q.tma_desc_, p.q, d, group(p), rows, heads_k, batch,
                                                 p.q_head_stride, p.q_row_stride,
                                                 packed ? p.q_row_stride : p.q_batch_stride, Base::kBlockM);
    if (r == CUDA_SUCCESS) {
      r = encode_packed_rows_map<Element>(&params.tma_o.tma_desc_, p.o, dv, group(p), rows, heads_k, batch,
                                          p.o_head_stride, p.o_row_stride, packed ? p.o_row_stride : p.o_batch_stride,
                                          Base::kBlockM);
    }
    if (result != nullptr) *result = r;
    params.geo = geometry(p);
    return params;
  }
};

}  // namespace flashcore::sm90
