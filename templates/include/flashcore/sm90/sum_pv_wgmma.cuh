// The PV GEMM's wgmma with the row sums (N = Dv + 8; traits.cuh kVPad, mainloop.cuh pv_gemm): m64nNk16,
// A (P) from registers K-major, B (V) from shared memory MN-major (imm-trans-b = 1), D += A B
// always (O and the sums accumulate across key tiles). D: O's Dv / 2 floats a thread, then the 4 sums. Written out for the two shapes it takes, N = 72 (Dv 64) and
// N = 136 (Dv 128), so that no variant includes CuTe's extended-shape header (mma_sm90_gmma_ext.hpp, ~56k lines,
// which doubled a variant's compile time) for them. Same instruction as CuTe's
// MMA_64x{72,136}x16_F32{BF16BF16,F16F16}_RS<Major::K, Major::MN>.
#pragma once

#include <cstdint>

#include <cute/config.hpp>
#include <cute/arch/mma_sm90_desc.hpp>
#include <cutlass/numeric_types.h>

namespace flashcore::sm90 {

template <int N, class Element>
struct SumPvWgmma;

// The instruction around its operands: scale-d = 1 (accumulate), D, A and B's descriptor. One macro a
// shape writes the specialisation for each input type (the PTX differs only in the type's name).
#if defined(CUTE_ARCH_MMA_SM90A_ENABLED)
#define FLASHCORE_SUM_PV_WGMMA_ASM(INSTRUCTION, ...)                                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" INSTRUCTION "}\n"                          \
               : __VA_ARGS__                                                                          \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc))
#else
#define FLASHCORE_SUM_PV_WGMMA_ASM(INSTRUCTION, ...) \
  CUTE_INVALID_CONTROL_PATH("the PV wgmma with row sums needs sm90a")
#endif

#define FLASHCORE_SUM_PV_WGMMA_N72(ELEMENT, TYPE)                                                                 \
  template <> struct SumPvWgmma<72, ELEMENT> {                                                                    \
    template <class Acc>                                                                                          \
    CUTE_DEVICE static void fma(uint32_t const (&a)[4], uint64_t desc, Acc& o, float (&sum)[4]) {                 \
      FLASHCORE_SUM_PV_WGMMA_ASM(                                                                                 \
          "wgmma.mma_async.sync.aligned.m64n72k16.f32." TYPE "." TYPE " "                                         \
          "{"                                                                                                     \
          "%0, %1, %2, %3, %4, %5, %6, %7, "                                                                      \
          "%8, %9, %10, %11, %12, %13, %14, %15, "                                                                \
          "%16, %17, %18, %19, %20, %21, %22, %23, "                                                              \
          "%24, %25, %26, %27, %28, %29, %30, %31, "                                                              \
          "%32, %33, %34, %35"                                                                                    \
          "}, {%36, %37, %38, %39}, %40, p, 1, 1, 1;\n",                                                          \
          "+f"(o(0)), "+f"(o(1)), "+f"(o(2)), "+f"(o(3)), "+f"(o(4)), "+f"(o(5)), "+f"(o(6)), "+f"(o(7)),         \
          "+f"(o(8)), "+f"(o(9)), "+f"(o(10)), "+f"(o(11)), "+f"(o(12)), "+f"(o(13)), "+f"(o(14)), "+f"(o(15)),   \
          "+f"(o(16)), "+f"(o(17)), "+f"(o(18)), "+f"(o(19)), "+f"(o(20)), "+f"(o(21)), "+f"(o(22)), "+f"(o(23)), \
          "+f"(o(24)), "+f"(o(25)), "+f"(o(26)), "+f"(o(27)), "+f"(o(28)), "+f"(o(29)), "+f"(o(30)), "+f"(o(31)), \
          "+f"(sum[0]), "+f"(sum[1]), "+f"(sum[2]), "+f"(sum[3]));                                                \
    }                                                                                                             \
  };

#define FLASHCORE_SUM_PV_WGMMA_N136(ELEMENT, TYPE)                                                                \
  template <> struct SumPvWgmma<136, ELEMENT> {                                                                   \
    template <class Acc>                                                                                          \
    CUTE_DEVICE static void fma(uint32_t const (&a)[4], uint64_t desc, Acc& o, float (&sum)[4]) {                 \
      FLASHCORE_SUM_PV_WGMMA_ASM(                                                                                 \
          "wgmma.mma_async.sync.aligned.m64n136k16.f32." TYPE "." TYPE " "                                        \
          "{"                                                                                                     \
          "%0, %1, %2, %3, %4, %5, %6, %7, "                                                                      \
          "%8, %9, %10, %11, %12, %13, %14, %15, "                                                                \
          "%16, %17, %18, %19, %20, %21, %22, %23, "                                                              \
          "%24, %25, %26, %27, %28, %29, %30, %31, "                                                              \
          "%32, %33, %34, %35, %36, %37, %38, %39, "                                                              \
          "%40, %41, %42, %43, %44, %45, %46, %47, "                                                              \
          "%48, %49, %50, %51, %52, %53, %54, %55, "                                                              \
          "%56, %57, %58, %59, %60, %61, %62, %63, "                                                              \
          "%64, %65, %66, %67"                                                                                    \
          "}, {%68, %69, %70, %71}, %72, p, 1, 1, 1;\n",                                                          \
          "+f"(o(0)), "+f"(o(1)), "+f"(o(2)), "+f"(o(3)), "+f"(o(4)), "+f"(o(5)), "+f"(o(6)), "+f"(o(7)),         \
          "+f"(o(8)), "+f"(o(9)), "+f"(o(10)), "+f"(o(11)), "+f"(o(12)), "+f"(o(13)), "+f"(o(14)), "+f"(o(15)),   \
          "+f"(o(16)), "+f"(o(17)), "+f"(o(18)), "+f"(o(19)), "+f"(o(20)), "+f"(o(21)), "+f"(o(22)), "+f"(o(23)), \
          "+f"(o(24)), "+f"(o(25)), "+f"(o(26)), "+f"(o(27)), "+f"(o(28)), "+f"(o(29)), "+f"(o(30)), "+f"(o(31)), \
          "+f"(o(32)), "+f"(o(33)), "+f"(o(34)), "+f"(o(35)), "+f"(o(36)), "+f"(o(37)), "+f"(o(38)), "+f"(o(39)), \
          "+f"(o(40)), "+f"(o(41)), "+f"(o(42)), "+f"(o(43)), "+f"(o(44)), "+f"(o(45)), "+f"(o(46)), "+f"(o(47)), \
          "+f"(o(48)), "+f"(o(49)), "+f"(o(50)), "+f"(o(51)), "+f"(o(52)), "+f"(o(53)), "+f"(o(54)), "+f"(o(55)), \
          "+f"(o(56)), "+f"(o(57)), "+f"(o(58)), "+f"(o(59)), "+f"(o(60)), "+f"(o(61)), "+f"(o(62)), "+f"(o(63)), \
          "+f"(sum[0]), "+f"(sum[1]), "+f"(sum[2]), "+f"(sum[3]));                                                \
    }                                                                                                             \
  };

FLASHCORE_SUM_PV_WGMMA_N72(cutlass::bfloat16_t, "bf16")
FLASHCORE_SUM_PV_WGMMA_N72(cutlass::half_t, "f16")
FLASHCORE_SUM_PV_WGMMA_N136(cutlass::bfloat16_t, "bf16")
FLASHCORE_SUM_PV_WGMMA_N136(cutlass::half_t, "f16")

#undef FLASHCORE_SUM_PV_WGMMA_N72
#undef FLASHCORE_SUM_PV_WGMMA_N136
#undef FLASHCORE_SUM_PV_WGMMA_ASM

}  // namespace flashcore::sm90
