// Building blocks shared by the tensor-core families (mma, pipelined): problem geometry,
// predicated tile copies, masks, the online softmax on SM80 MMA accumulators, and the epilogue.
// Everything is a template over CuTe tensors so each family's kernel reads as its mainloop.
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

// ---------------------------------------------------------------------------------------
// Geometry of one thread block: which (batch, head, query tile) it owns, how many key tiles.
// ---------------------------------------------------------------------------------------
// The grid is (query tiles, heads, batch), launched through launch_chunked() (api.h) so that any
// batch and head count works (chunks of at most 65535 of each, pointers advanced per chunk).
template <int kBlockM, int kBlockN, bool kCausal>
struct BlockGeometry {
  int batch, head, m_block;
  int row0;       // first query row of the tile
  int rows;       // valid query rows in the tile (<= kBlockM)
  int n_blocks;   // key tiles to visit (causal: up to the diagonal)

  CUTE_DEVICE BlockGeometry(FwdParams const& p) {
    // Causal tiles near the end of the sequence see more keys: launch them first.
    m_block = kCausal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
    head = blockIdx.y;
    batch = blockIdx.z;
    row0 = m_block * kBlockM;
    rows = min(kBlockM, p.seqlen_q - row0);
    // Top-left aligned causal mask: query i sees keys j <= i.
    int key_end = kCausal ? min(p.seqlen_k, row0 + kBlockM) : p.seqlen_k;
    n_blocks = (key_end + kBlockN - 1) / kBlockN;
  }

  // Does key tile n need masking (sequence end, or crossing the causal diagonal)?
  CUTE_DEVICE bool needs_mask(int n, int seqlen_k) const {
    int col_end = (n + 1) * kBlockN;
    return col_end > seqlen_k || (kCausal && col_end - 1 > row0);
  }
};

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
                           int batch, int head, int seqlen) {
  Element* ptr = base + batch * batch_stride + head * head_stride;
  return make_tensor(make_gmem_ptr(ptr), make_shape(seqlen, Int<kHeadDim>{}), make_stride(row_stride, _1{}));
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
// Masking: scores of invisible keys become -inf before the softmax.
// ---------------------------------------------------------------------------------------
template <bool kCausal, class ScoreTensor, class CoordTensor>
CUTE_DEVICE void apply_mask(ScoreTensor& acc_s, CoordTensor const& coords, int row0, int col0, int seqlen_k) {
  auto s = rowcol_view(acc_s);
  auto c = rowcol_view(coords);
  CUTE_UNROLL
  for (int i = 0; i < size<0>(s); ++i) {
    int row = row0 + get<0>(c(i, 0));
    CUTE_UNROLL
    for (int j = 0; j < size<1>(s); ++j) {
      int col = col0 + get<1>(c(i, j));
      if (col >= seqlen_k || (kCausal && col > row)) s(i, j) = -INFINITY;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Online softmax over the rows a thread holds. A row's 8 columns per n8 tile are spread over
// the 4 threads of a quad, so row reductions finish with two xor-shuffles.
// ---------------------------------------------------------------------------------------
CUTE_DEVICE float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
}
CUTE_DEVICE float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  return x + __shfl_xor_sync(0xffffffff, x, 2);
}

// scale_log2 must be positive (FwdParams::scale_log2_abs, with a negative scale folded into Q by
// negate_smem): the running max of raw scores is then the max of the scaled ones, and a masked
// score (-inf) scales to -inf, i.e. probability 0.
template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows];  // running max of raw scores (unscaled)
  float row_sum[kRows];  // this thread's partial sum of exp (quad-reduced at the end)

  // Turn the score tile into probabilities in place and rescale the output accumulator.
  template <bool kFirst, class ScoreTensor, class OutTensor>
  CUTE_DEVICE void update(ScoreTensor& acc_s, OutTensor& acc_o, float scale_log2) {
    auto s = rowcol_view(acc_s);
    auto o = rowcol_view(acc_o);
    static_assert(decltype(size<0>(s))::value == kRows);
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float tile_max = s(i, 0);
      CUTE_UNROLL
      for (int j = 1; j < size<1>(s); ++j) tile_max = fmaxf(tile_max, s(i, j));
      tile_max = quad_max(tile_max);
      float new_max = kFirst ? tile_max : fmaxf(row_max[i], tile_max);
      // A row with every key masked so far has max -inf: subtract 0 to keep exp2 finite.
      float max_scaled = new_max == -INFINITY ? 0.f : new_max * scale_log2;
      float tile_sum = 0.f;
      CUTE_UNROLL
      for (int j = 0; j < size<1>(s); ++j) {
        s(i, j) = exp2f(s(i, j) * scale_log2 - max_scaled);
        tile_sum += s(i, j);
      }
      if constexpr (kFirst) {
        row_sum[i] = tile_sum;
      } else {
        float correction = exp2f(row_max[i] * scale_log2 - max_scaled);
        row_sum[i] = row_sum[i] * correction + tile_sum;
        CUTE_UNROLL
        for (int j = 0; j < size<1>(o); ++j) o(i, j) *= correction;
      }
      row_max[i] = new_max;
    }
  }

  // Normalise the output rows; return each row's natural-log logsumexp.
  template <class OutTensor>
  CUTE_DEVICE void finalize(OutTensor& acc_o, float scale, float (&lse)[kRows]) {
    auto o = rowcol_view(acc_o);
    CUTE_UNROLL
    for (int i = 0; i < kRows; ++i) {
      float sum = quad_sum(row_sum[i]);
      float inv = (sum == 0.f || sum != sum) ? 1.f : 1.f / sum;
      lse[i] = (sum == 0.f || sum != sum) ? INFINITY : row_max[i] * scale + __logf(sum);
      CUTE_UNROLL
      for (int j = 0; j < size<1>(o); ++j) o(i, j) *= inv;
    }
  }
};

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

// ---------------------------------------------------------------------------------------
// Epilogue: normalised O through shared memory (so global stores are 128-bit and coalesced),
// and the LSE of each valid row from the quad leader that holds it.
// ---------------------------------------------------------------------------------------
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

// Opt in to more than 48 KB of dynamic shared memory, then launch.
template <class Kernel>
inline cudaError_t launch(Kernel kernel, dim3 grid, dim3 block, int smem_bytes, cudaStream_t stream,
                          FwdParams const& p) {
  if (smem_bytes > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, block, smem_bytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flashcore::sm80
