// The variants trace_tiles.cu times, built twice by trace.sh: from the patched headers (hooks on,
// names as below) and from the shipped ones (-DFC_SUFFIX=_base, no hooks).
#include "flashcore/sm90/kernel_ws.cuh"

using bf16 = cutlass::bfloat16_t;
#ifndef FC_SUFFIX
#define FC_SUFFIX
#endif
#define FC_CAT2(a, b) a##b
#define FC_CAT(a, b) FC_CAT2(a, b)
#ifdef FC_TRACE_PATCHED
#define FC_SET_BUF(st, tb) cudaMemcpyToSymbolAsync(fc_trace::buf, &(tb), sizeof(tb), 0, cudaMemcpyHostToDevice, (st))
#else
#define FC_SET_BUF(st, tb) cudaSuccess
#endif
#define FC_VARIANT(NAME, ...)                                                                          \
  cudaError_t FC_CAT(NAME, FC_SUFFIX)(flashcore::FwdParams const& p, cudaStream_t st, uint64_t* tb) { \
    cudaError_t e = FC_SET_BUF(st, tb);                                                                \
    return e != cudaSuccess ? e : flashcore::sm90::run_fwd<__VA_ARGS__>(p, st);                        \
  }

//         name            Element D    BM   BN  St WG causal overlap persistent pingpong
#if FC_GROUP == 0
FC_VARIANT(d64_nc_m192,    bf16, 64,  192, 128, 2, 3, false, true, true, false)
#elif FC_GROUP == 1
FC_VARIANT(d64_c_m128_pp,  bf16, 64,  128, 128, 2, 2, true,  true, true, true)
#elif FC_GROUP == 2
FC_VARIANT(d128_nc_pp,     bf16, 128, 128, 128, 2, 2, false, true, true, true)
#elif FC_GROUP == 3
FC_VARIANT(d256_c_n64,     bf16, 256, 128, 64,  2, 2, true,  true, true, false)
#endif
