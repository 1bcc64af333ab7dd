// What the parts of the SM80 kernel share: the tile configuration, global views and copies,
// the accumulator layouts of the m16n8k16 atom, and the two GEMM loops (QK^T and PV).
// Everything is a template over CuTe tensors, so a mainloop reads as its schedule.
#pragma once

#include <cmath>
#include <cstdint>

#include <cute/tensor.hpp>
#include <cutlass/array.h>
#include <cutlass/numeric_conversion.h>
#include <cutlass/numeric_types.h>

#include "flashcore/api.h"

namespace flashcore::sm80 {

using namespace cute;

// One variant's tiles: the parameters every part of the kernel is built from.
template <class Element_, class MmaAtom, int kHeadDim_, int kBlockM_, int kBlockN_, int kWarps_, bool kCausal_>
struct TileConfig {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kWarps = kWarps_;
  static constexpr bool kCausal = kCausal_;
  static constexpr int kThreads = 32 * kWarps;

  // Warps stacked along M: each warp owns 16*k query rows and all of N.
  using TiledMma = TiledMMA<MMA_Atom<MmaAtom>, Layout<Shape<Int<kWarps>, _1, _1>>, Tile<Int<16 * kWarps>, _16, _16>>;
  // Accumulator rows per thread: 2 per 16-row MMA tile (OnlineSoftmax checks it against the layout).
  static constexpr int kAccRows = 2 * kBlockM / (16 * kWarps);

  using ShapeQ = Shape<Int<kBlockM>, Int<kHeadDim>>;   // Q and O tiles
  using ShapeKV = Shape<Int<kBlockN>, Int<kHeadDim>>;  // K and V tiles
  using ShapeS = Shape<Int<kBlockM>, Int<kBlockN>>;    // score tile
};

// Global -> shared copy of 128-bit vectors, 8 threads per 64-column row segment. CopyOp picks
// a synchronous copy through registers or cp.async.
template <class CopyOp, class Config>
using GmemTiledCopy = decltype(make_tiled_copy(
    Copy_Atom<CopyOp, typename Config::Element>{},
    Layout<Shape<Int<Config::kThreads / 8>, _8>, Stride<_8, _1>>{}, Layout<Shape<_1, _8>>{}));

// threadIdx.x read through a volatile asm: NVVM cannot hoist what is computed from it out of
// the mainloop, so per-thread addresses derived from it are recomputed where they are used
// instead of occupying registers (or local memory) across the whole loop.
CUTE_DEVICE int fresh_thread_idx() {
  int tid;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(tid));
  return tid;
}

// (seqlen, head_dim) view of one head of a (B, H, S, D) tensor with arbitrary strides.
template <int kHeadDim, class Element>
CUTE_DEVICE auto head_view(Element* base, int64_t batch_stride, int64_t head_stride, int64_t row_stride,
                           int batch, int head, int row_start, int seqlen) {
  Element* ptr = base + batch * batch_stride + head * head_stride + row_start * row_stride;
  return make_tensor(make_gmem_ptr(ptr), make_shape(seqlen, Int<kHeadDim>{}), make_stride(row_stride, _1{}));
}

// A block's tiles in global memory: its Q and O tile (M, D), all its K and V tiles (N, D, n).
template <class TileQ, class TileO, class TilesK, class TilesV>
struct GlobalTiles {
  TileQ q;
  TileO o;
  TilesK k;
  TilesV v;
};

template <class Config, class Block>
CUTE_DEVICE auto global_tiles(FwdParams const& p, Block const& blk) {
  using Element = typename Config::Element;
  constexpr int kHeadDim = Config::kHeadDim;
  SeqSpan const& seq = blk.seq;
  auto mQ = head_view<kHeadDim>(static_cast<Element const*>(p.q), p.q_batch_stride, p.q_head_stride,
                                p.q_row_stride, blk.batch, blk.head, seq.q_start, seq.seqlen_q);
  auto mK = head_view<kHeadDim>(static_cast<Element const*>(p.k), p.k_batch_stride, p.k_head_stride,
                                p.k_row_stride, blk.batch, blk.head_kv, seq.k_start, seq.mask.seqlen_k);
  auto mV = head_view<kHeadDim>(static_cast<Element const*>(p.v), p.v_batch_stride, p.v_head_stride,
                                p.v_row_stride, blk.batch, blk.head_kv, seq.k_start, seq.mask.seqlen_k);
  auto mO = head_view<kHeadDim>(static_cast<Element*>(p.o), p.o_batch_stride, p.o_head_stride,
                                p.o_row_stride, blk.batch, blk.head, seq.q_start, seq.seqlen_q);
  auto gQ = local_tile(mQ, typename Config::ShapeQ{}, make_coord(blk.m_block, 0));
  auto gO = local_tile(mO, typename Config::ShapeQ{}, make_coord(blk.m_block, 0));
  auto gK = local_tile(mK, typename Config::ShapeKV{}, make_coord(_, 0));
  auto gV = local_tile(mV, typename Config::ShapeKV{}, make_coord(_, 0));
  return GlobalTiles<decltype(gQ), decltype(gO), decltype(gK), decltype(gV)>{gQ, gO, gK, gV};
}

// Copy a partitioned tile row by row; rows past `valid_rows` are zero-filled in shared memory
// so that masked keys (P = 0) never meet garbage (0 * NaN = NaN) in the PV product.
template <class TiledCopy, class SrcTensor, class DstTensor, class CoordTensor>
CUTE_DEVICE void copy_rows(TiledCopy const& tiled_copy, SrcTensor const& src, DstTensor&& dst,
                           CoordTensor const& coords, int valid_rows) {
  CUTE_UNROLL
  for (int m = 0; m < size<1>(src); ++m) {
    if (get<0>(coords(0, m, 0)) < valid_rows) {
      copy(tiled_copy, src(_, m, _), dst(_, m, _));
    } else {
      clear(dst(_, m, _));
    }
  }
}

// Negative softmax scales: softmax(scale * Q.K^T) == softmax(|scale| * (-Q).K^T). The kernels
// take the row max of raw scores and mask with -inf, which is right for a positive scale only,
// so with FwdParams::negate_q they flip the sign bit of every element of their Q tile in shared
// memory once (exact, NaN stays NaN) and run with scale_log2_abs. The positive-scale path pays
// one uniform branch per block. The whole block calls this; the caller makes Q visible first
// and publishes the result with a barrier afterwards.
template <int kThreads, int kElems, class Element>
CUTE_DEVICE void negate_smem(Element* smem) {
  static_assert(sizeof(Element) == 2 && kElems % 8 == 0, "16-bit elements, 16-byte vectors");
  uint4* vec = reinterpret_cast<uint4*>(smem);
  CUTE_NO_UNROLL
  for (int i = int(threadIdx.x); i < kElems / 8; i += kThreads) {
    uint4 x = vec[i];
    x.x ^= 0x80008000u;
    x.y ^= 0x80008000u;
    x.z ^= 0x80008000u;
    x.w ^= 0x80008000u;
    vec[i] = x;
  }
}

// ---------------------------------------------------------------------------------------
// Accumulator layouts of the m16n8k16 atom.
// A C fragment is ((2 cols, 2 rows), MMA_M, MMA_N); view it as (rows, cols).
// ---------------------------------------------------------------------------------------
template <class Layout>
CUTE_HOST_DEVICE constexpr auto rowcol(Layout const& acc) {
  static_assert(decltype(rank(acc))::value == 3);
  return make_layout(make_layout(get<0, 1>(acc), get<1>(acc)), make_layout(get<0, 0>(acc), get<2>(acc)));
}

template <class Tensor>
CUTE_DEVICE auto rowcol_view(Tensor&& t) {
  return make_tensor(t.data(), rowcol(t.layout()));
}

// Two neighbouring n8 accumulator tiles form one k16 A-operand tile: reuse S's registers as P.
template <class Layout>
CUTE_HOST_DEVICE constexpr auto acc_as_a_operand(Layout const& acc) {
  auto l = logical_divide(acc, Shape<Underscore, Underscore, _2>{});  // (4, MMA_M, (2, MMA_N/2))
  return make_layout(make_layout(get<0>(l), get<2, 0>(l)), get<1>(l), get<2, 1>(l));
}

// fp32 -> fp16/bf16 in pairs (cvt.rn.*x2), into a fresh register tensor with the same layout.
template <class To, class Tensor>
CUTE_DEVICE auto convert_to(Tensor const& src) {
  using From = typename std::decay_t<Tensor>::value_type;
  constexpr int N = decltype(size(src))::value;
  auto dst = make_tensor<To>(src.layout());
  auto const& in = *reinterpret_cast<cutlass::Array<From, N> const*>(raw_pointer_cast(src.data()));
  *reinterpret_cast<cutlass::Array<To, N>*>(raw_pointer_cast(dst.data())) =
      cutlass::NumericArrayConverter<To, From, N>{}(in);
  return dst;
}

// ---------------------------------------------------------------------------------------
// GEMM helpers. gemm_ss: both operands from shared memory, the next k-slice's load issued
// before the current k-slice's MMAs. gemm_rs: A already in registers (P).
// kStreamB: B of slice k+1 is loaded copy-chunk by copy-chunk, each right after the MMAs that
// read the same chunk of slice k, so about one B slice is live instead of two (same MMAs, same
// per-accumulator k order: identical results, fewer registers for wide-N tiles).
// ---------------------------------------------------------------------------------------
template <bool kStreamB = false, class Acc, class FragA, class FragB, class SmemA, class SmemB, class TiledMma,
          class CopyA, class CopyB>
CUTE_DEVICE void gemm_ss(Acc& acc, FragA& rA, FragB& rB, SmemA const& sA, SmemB const& sB, TiledMma const& mma,
                         CopyA const& copy_a, CopyB const& copy_b, int tid) {
  auto thr_a = copy_a.get_thread_slice(tid);
  auto thr_b = copy_b.get_thread_slice(tid);
  auto rA_view = thr_a.retile_D(rA);
  auto rB_view = thr_b.retile_D(rB);
  copy(copy_a, sA(_, _, _0{}), rA_view(_, _, _0{}));
  copy(copy_b, sB(_, _, _0{}), rB_view(_, _, _0{}));
  if constexpr (kStreamB) {
    constexpr int kChunks = decltype(size<1>(rB_view))::value;
    constexpr int kTilesPerChunk = decltype(size<1>(rB))::value / kChunks;
    static_assert(kChunks * kTilesPerChunk == decltype(size<1>(rB))::value);
    CUTE_UNROLL
    for (int k = 0; k < size<2>(rA); ++k) {
      if (k + 1 < size<2>(rA)) copy(copy_a, sA(_, _, k + 1), rA_view(_, _, k + 1));
      CUTE_UNROLL
      for (int j = 0; j < kChunks; ++j) {
        CUTE_UNROLL
        for (int n = j * kTilesPerChunk; n < (j + 1) * kTilesPerChunk; ++n) {
          CUTE_UNROLL
          for (int m = 0; m < size<1>(rA); ++m) {
            auto c = acc(_, m, n);
            gemm(mma, rA(_, m, k), rB(_, n, k), c);
          }
        }
        if (k + 1 < size<2>(rA)) copy(copy_b, sB(_, j, k + 1), rB_view(_, j, k + 1));
      }
    }
  } else {
    CUTE_UNROLL
    for (int k = 0; k < size<2>(rA); ++k) {
      if (k + 1 < size<2>(rA)) {
        copy(copy_a, sA(_, _, k + 1), rA_view(_, _, k + 1));
        copy(copy_b, sB(_, _, k + 1), rB_view(_, _, k + 1));
      }
      gemm(mma, rA(_, _, k), rB(_, _, k), acc);
    }
  }
}

template <class Acc, class FragA, class FragB, class SmemB, class TiledMma, class CopyB>
CUTE_DEVICE void gemm_rs(Acc& acc, FragA const& rA, FragB& rB, SmemB const& sB, TiledMma const& mma,
                         CopyB const& copy_b, int tid) {
  auto thr_b = copy_b.get_thread_slice(tid);
  auto rB_view = thr_b.retile_D(rB);
  copy(copy_b, sB(_, _, _0{}), rB_view(_, _, _0{}));
  CUTE_UNROLL
  for (int k = 0; k < size<2>(rA); ++k) {
    if (k + 1 < size<2>(rA)) copy(copy_b, sB(_, _, k + 1), rB_view(_, _, k + 1));
    gemm(mma, rA(_, _, k), rB(_, _, k), acc);
  }
}

// O += P V with P = the probabilities in S's registers, converted to the element type.
template <class Element, class AccO, class AccS, class FragV, class SmemVt, class TiledMma, class CopyV>
CUTE_DEVICE void pv_product(AccO& acc_o, AccS const& acc_s, FragV& tOrVt, SmemVt const& tOsVt, TiledMma const& mma,
                            CopyV const& copy_v, int tid) {
  auto rP = convert_to<Element>(acc_s);
  auto tOrP = make_tensor(rP.data(), acc_as_a_operand(rP.layout()));
  gemm_rs(acc_o, tOrP, tOrVt, tOsVt, mma, copy_v, tid);
}

}  // namespace flashcore::sm80
