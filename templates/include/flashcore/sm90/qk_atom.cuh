// The QK^T GEMM's wgmma atom (S = Q K^T, both operands K-major in shared memory, fp32 accumulators).
// For CuTe's base wgmma N sizes it is CuTe's own selector's pick. The other block_n sizes (48, 80,
// 112, 144, 176) come from extended_shapes.cuh, which a variant includes only when its block_n needs
// it: CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED, which would make the selector pick them, also pulls in the
// sparse extended shapes (~78k lines that no unit of ours uses) and cost every such variant ~20 s
// more of a core (measured 2026-11-28).
#pragma once

#include <cute/arch/mma_sm90.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>

namespace flashcore::sm90 {

// The wgmma N sizes CuTe declares without CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED (codegen/families.py
// SM90_BASE_WGMMA_N).
constexpr bool is_base_wgmma_n(int n) {
  return n == 8 || n == 16 || n == 32 || n == 64 || n == 96 || n == 128 || n == 192 || n == 256;
}

template <class Element, int kBlockM, int kBlockN, int kHeadDim>
struct QkAtom {
  static_assert(is_base_wgmma_n(kBlockN),
                "this block_n needs an extended wgmma shape: include flashcore/sm90/extended_shapes.cuh first "
                "(the generator does for variants with extended_wgmma_shapes)");
  using type = decltype(cute::GMMA::ss_op_selector<Element, Element, float,
                                                   cute::Shape<cute::Int<kBlockM>, cute::Int<kBlockN>, cute::Int<kHeadDim>>>());
};

}  // namespace flashcore::sm90
