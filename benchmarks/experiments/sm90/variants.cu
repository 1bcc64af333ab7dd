// Instantiations of the sm90 kernel for the harness, split into groups (-DFC_GROUP=n) so that
// run.sh can compile them in parallel. Each group defines entries of the table in harness.cu.
#include "flashcore/sm90/kernel_ws.cuh"

using bf16 = cutlass::bfloat16_t;
using fp16 = cutlass::half_t;
namespace s = flashcore::sm90;

// FC_SUFFIX (e.g. _q1) renames a group's instantiations, so one group can be built twice with
// different defines (run 7: -DFLASHCORE_SM90_MAX_Q_STAGES=1 -DFC_SUFFIX=_q1).
#ifndef FC_SUFFIX
#define FC_SUFFIX
#endif
#define FC_CAT2(a, b) a##b
#define FC_CAT(a, b) FC_CAT2(a, b)
#define FC_VARIANT(NAME, ...)                                                              \
  cudaError_t FC_CAT(NAME, FC_SUFFIX)(flashcore::FwdParams const& p, cudaStream_t st) {     \
    return s::run_fwd<__VA_ARGS__>(p, st);                                                 \
  }

//           name                        Element D    BM   BN  St WG causal overlap persistent [pingpong]
#if FC_GROUP == 0
FC_VARIANT(bf16_d128_nc_ovl,           bf16, 128, 128, 128, 2, 2, false, true,  false)
#elif FC_GROUP == 1
FC_VARIANT(bf16_d128_c_ovl,            bf16, 128, 128, 128, 2, 2, true,  true,  false)
#elif FC_GROUP == 2
FC_VARIANT(bf16_d128_nc_seq,           bf16, 128, 128, 128, 2, 2, false, false, false)
#elif FC_GROUP == 3
FC_VARIANT(bf16_d128_c_seq,            bf16, 128, 128, 128, 2, 2, true,  false, false)
#elif FC_GROUP == 4
FC_VARIANT(bf16_d128_nc_ovl_persist,   bf16, 128, 128, 128, 2, 2, false, true,  true)
#elif FC_GROUP == 5
FC_VARIANT(bf16_d128_c_ovl_persist,    bf16, 128, 128, 128, 2, 2, true,  true,  true)
#elif FC_GROUP == 6
FC_VARIANT(fp16_d128_nc_ovl,           fp16, 128, 128, 128, 2, 2, false, true,  false)
FC_VARIANT(fp16_d128_c_ovl,            fp16, 128, 128, 128, 2, 2, true,  true,  false)
#elif FC_GROUP == 7
FC_VARIANT(bf16_d64_nc_ovl,            bf16, 64,  192, 128, 2, 3, false, true,  false)
FC_VARIANT(bf16_d64_c_ovl,             bf16, 64,  192, 128, 2, 3, true,  true,  false)
#elif FC_GROUP == 8
FC_VARIANT(bf16_d256_nc_ovl,           bf16, 256, 128, 64,  2, 2, false, true,  false)
FC_VARIANT(bf16_d256_c_ovl,            bf16, 256, 128, 64,  2, 2, true,  true,  false)
#elif FC_GROUP == 9
FC_VARIANT(bf16_d128_nc_pp,            bf16, 128, 128, 128, 2, 2, false, true,  false, true)
FC_VARIANT(bf16_d128_c_pp,             bf16, 128, 128, 128, 2, 2, true,  true,  false, true)
#elif FC_GROUP == 10
// FA3's D128 non-causal tile (N = 176 needs -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED, run.sh adds it).
FC_VARIANT(bf16_d128_nc_n176_pp,       bf16, 128, 128, 176, 2, 2, false, true,  false, true)
FC_VARIANT(bf16_d128_nc_n176_ovl,      bf16, 128, 128, 176, 2, 2, false, true,  false, false)
#elif FC_GROUP == 11
FC_VARIANT(bf16_d64_nc_pp,             bf16, 64,  192, 128, 2, 3, false, true,  false, true)
FC_VARIANT(bf16_d64_c_pp,              bf16, 64,  192, 128, 2, 3, true,  true,  false, true)
#elif FC_GROUP == 12
// D64 on 2 consumer WGs (240 regs, no spills) instead of 3 WGs at 160 regs.
FC_VARIANT(bf16_d64_nc_m128n192_pp,    bf16, 64,  128, 192, 2, 2, false, true,  false, true)
FC_VARIANT(bf16_d64_nc_m128n128_ovl,   bf16, 64,  128, 128, 2, 2, false, true,  false, false)
FC_VARIANT(bf16_d64_c_m128n128_ovl,    bf16, 64,  128, 128, 2, 2, true,  true,  false, false)
// Run 4: persistent CTAs with O staged apart from Q (the next tile's Q/K load during this
// tile's epilogue); causal ones take tiles from the dynamic scheduler.
#elif FC_GROUP == 13
FC_VARIANT(bf16_d128_nc_pp_persist,    bf16, 128, 128, 128, 2, 2, false, true,  true,  true)
#elif FC_GROUP == 14
FC_VARIANT(bf16_d64_nc_ovl_persist,    bf16, 64,  192, 128, 2, 3, false, true,  true)
FC_VARIANT(bf16_d64_nc_m128n128_ovl_persist, bf16, 64, 128, 128, 2, 2, false, true, true)
#elif FC_GROUP == 15
FC_VARIANT(bf16_d64_c_ovl_persist,     bf16, 64,  192, 128, 2, 3, true,  true,  true)
FC_VARIANT(bf16_d64_c_m128n128_ovl_persist, bf16, 64, 128, 128, 2, 2, true, true, true)
#elif FC_GROUP == 16
FC_VARIANT(bf16_d256_nc_ovl_persist,   bf16, 256, 128, 64,  2, 2, false, true,  true)
FC_VARIANT(bf16_d256_c_ovl_persist,    bf16, 256, 128, 64,  2, 2, true,  true,  true)
#elif FC_GROUP == 17
FC_VARIANT(bf16_d64_nc_m128n192_pp_persist, bf16, 64, 128, 192, 2, 2, false, true, true, true)
// Run 5: more persistent tiles: D64 short-sequence candidates, FA3's D128 176, D256 80.
#elif FC_GROUP == 18
FC_VARIANT(bf16_d64_nc_m128n128_pp_persist, bf16, 64, 128, 128, 2, 2, false, true, true, true)
FC_VARIANT(bf16_d64_c_m128n128_pp_persist,  bf16, 64, 128, 128, 2, 2, true,  true, true, true)
#elif FC_GROUP == 19
FC_VARIANT(bf16_d64_c_m128n64_ovl_persist,  bf16, 64, 128, 64,  2, 2, true,  true, true)
FC_VARIANT(bf16_d64_c_m128n96_ovl_persist,  bf16, 64, 128, 96,  2, 2, true,  true, true)
#elif FC_GROUP == 20
FC_VARIANT(bf16_d64_nc_m64n128_ovl_persist, bf16, 64, 64,  128, 2, 1, false, true, true)
FC_VARIANT(bf16_d64_c_m64n128_ovl_persist,  bf16, 64, 64,  128, 2, 1, true,  true, true)
#elif FC_GROUP == 21
FC_VARIANT(bf16_d64_nc_m128n176_ovl_persist, bf16, 64, 128, 176, 2, 2, false, true, true)
FC_VARIANT(bf16_d64_nc_m128n96_ovl_persist,  bf16, 64, 128, 96,  2, 2, false, true, true)
#elif FC_GROUP == 22
FC_VARIANT(bf16_d128_nc_n176_pp_persist,    bf16, 128, 128, 176, 2, 2, false, true, true, true)
FC_VARIANT(bf16_d256_nc_n80_ovl_persist,    bf16, 256, 128, 80,  2, 2, false, true, true)
FC_VARIANT(bf16_d256_c_n80_ovl_persist,     bf16, 256, 128, 80,  2, 2, true,  true, true)
#endif
