// The QK^T atoms of the block_n sizes outside CuTe's base wgmma set, from CuTe's dense extended
// shapes alone (see qk_atom.cuh). The generated source of a variant whose block_n needs one includes
// this header before the kernel's; the atoms are the ones CuTe's selector picks with
// CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED (the same types, so the same SASS).
#pragma once

#include <cutlass/numeric_types.h>

#include "flashcore/sm90/qk_atom.cuh"  // the base atoms and traits, which the extended ones build on
#include <cute/arch/mma_sm90_gmma_ext.hpp>
#include <cute/atom/mma_traits_sm90_gmma_ext.hpp>

namespace flashcore::sm90 {

#define FLASHCORE_SM90_EXTENDED_QK_ATOM(N)                                                              \
  template <int kBlockM, int kHeadDim>                                                                  \
  struct QkAtom<cutlass::half_t, kBlockM, N, kHeadDim> {                                                \
    static_assert(kHeadDim % 16 == 0, "Tile_K must be a multiple of 16.");                              \
    using type = cute::SM90::GMMA::MMA_64x##N##x16_F32F16F16_SS<cute::GMMA::Major::K, cute::GMMA::Major::K>;   \
  };                                                                                                    \
  template <int kBlockM, int kHeadDim>                                                                  \
  struct QkAtom<cutlass::bfloat16_t, kBlockM, N, kHeadDim> {                                            \
    static_assert(kHeadDim % 16 == 0, "Tile_K must be a multiple of 16.");                              \
    using type = cute::SM90::GMMA::MMA_64x##N##x16_F32BF16BF16_SS<cute::GMMA::Major::K, cute::GMMA::Major::K>; \
  };

FLASHCORE_SM90_EXTENDED_QK_ATOM(48)
FLASHCORE_SM90_EXTENDED_QK_ATOM(80)
FLASHCORE_SM90_EXTENDED_QK_ATOM(112)
FLASHCORE_SM90_EXTENDED_QK_ATOM(144)
FLASHCORE_SM90_EXTENDED_QK_ATOM(176)

#undef FLASHCORE_SM90_EXTENDED_QK_ATOM

}  // namespace flashcore::sm90
