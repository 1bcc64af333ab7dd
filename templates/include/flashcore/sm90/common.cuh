// Small helpers shared by the sm90 (Hopper: TMA + wgmma + warp specialisation) parts.
#pragma once

#include <cmath>
#include <cstdint>

#include <cute/tensor.hpp>
#include <cute/arch/mma_sm90_gmma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/cutlass.h>
#include <cutlass/numeric_conversion.h>
#include <cutlass/numeric_types.h>

namespace flashcore::sm90 {

using namespace cute;

// User named-barrier ids (NamedBarrier::sync(n, id) adds FirstUserBarrier = 8 to these).
enum class NamedBarriers : uint32_t {
  kEpilogue = 0,  // all consumer threads: O tile fully written to smem before the TMA store
  kWgScheduler0 = 1,  // pingpong token of consumer WG w: id kWgScheduler0 + w (w < 3)
  kEpilogueWg0 = 4,   // one consumer WG's threads (id kEpilogueWg0 + w, w < 3): its O rows in smem; a tile without keys
  kKeySplit = 7,      // key-split WGs: every WG's wgmmas are done with the K/V rings (key_split.cuh)
};

// Pingpong between consumer warpgroups (FA3 section 3.1): a token passes round the consumer WGs;
// a WG issues its wgmmas only while it holds the token, so one WG's softmax overlaps the other
// WGs' GEMMs. Barrier w counts 2 x 128: WG w's sync + the previous WG's arrive.
template <int kConsumerWGs, bool kEnabled>
struct WgScheduler {
  CUTE_DEVICE static uint32_t id(int wg) { return uint32_t(NamedBarriers::kWgScheduler0) + uint32_t(wg); }
  // Once per kernel: WG 0 starts with the token.
  CUTE_DEVICE static void init(int wg) {
    if constexpr (kEnabled) {
      if (wg == 0) cutlass::arch::NamedBarrier::arrive(2 * 128, id(0));
    }
  }
  CUTE_DEVICE static void acquire(int wg) {
    if constexpr (kEnabled) cutlass::arch::NamedBarrier::sync(2 * 128, id(wg));
  }
  CUTE_DEVICE static void pass(int wg) {
    if constexpr (kEnabled) cutlass::arch::NamedBarrier::arrive(2 * 128, id(wg + 1 == kConsumerWGs ? 0 : wg + 1));
  }
};

// Programmatic dependent launch (PDL): a kernel launched with the programmatic stream
// serialisation attribute may start while the previous kernel on its stream still runs.
// griddepcontrol.wait returns once that kernel has completed and its writes are visible (at once
// when there is none), so nothing before it may touch global memory; launch_dependents lets the
// next such kernel start its prologue (it takes effect once every CTA of this grid issued it or
// exited). Both are no-ops for a kernel launched without the attribute.
CUTE_DEVICE void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
CUTE_DEVICE void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// setmaxnreg budgets: producer WG + consumer WGs must fit the 64K-register file. A split-KV
// producer computes its share of the key tiles: at 24 registers it spilled (ptxas, 68 B), so two
// split-KV consumer WGs give it 8 of theirs each (D64's consumers need far fewer than 232).
// Several CTAs per SM: setmaxnreg moves registers only within a CTA's pool, which is what the CTA
// launched with: two CTAs launch at 128 registers a thread (__launch_bounds__(256, 2): 24 + 232 =
// 2 x 128), three at 80 (65536 / 768 = 85, in steps of 8: 24 + 136 = 2 x 80).
template <int kConsumerWGs, bool kSplitKv = false, int kCtasPerSm = 1>
struct RegisterSplit : RegisterSplit<kConsumerWGs, false, 1> {};
template <> struct RegisterSplit<1, false, 1> { static constexpr int kProducer = 56; static constexpr int kConsumer = 256; };
template <> struct RegisterSplit<2, false, 1> { static constexpr int kProducer = 24; static constexpr int kConsumer = 240; };
template <> struct RegisterSplit<2, true, 1> { static constexpr int kProducer = 40; static constexpr int kConsumer = 232; };
template <> struct RegisterSplit<3, false, 1> { static constexpr int kProducer = 32; static constexpr int kConsumer = 160; };
// Four consumer WGs (key-split, key_split.cuh): 640 threads launch at 96 registers each (the most a
// 64K file gives 20 warps in steps of 8), a pool of 61440: 24 x 128 + 112 x 512 = 60416 fits, 120 would not.
template <> struct RegisterSplit<4, false, 1> { static constexpr int kProducer = 24; static constexpr int kConsumer = 112; };
template <> struct RegisterSplit<1, false, 2> { static constexpr int kProducer = 24; static constexpr int kConsumer = 232; };
template <> struct RegisterSplit<1, false, 3> { static constexpr int kProducer = 24; static constexpr int kConsumer = 136; };

// One warpgroup GEMM: C (+)= A * B over all k-blocks, issued async; commit; optionally wait.
// A is either smem descriptors (SS) or registers (RS); B is always smem descriptors.
template <bool kZeroInit, int kWait = -1, class TiledMma, class TA, class TB, class TC>
CUTE_DEVICE void wg_gemm(TiledMma& tiled_mma, TA const& tCrA, TB const& tCrB, TC& tCrC) {
  constexpr bool kIsRS = !is_base_of<GMMA::DescriptorIterator, typename TA::engine_type::iterator>::value;
  if constexpr (kIsRS) warpgroup_fence_operand(const_cast<TA&>(tCrA));
  warpgroup_fence_operand(tCrC);
  warpgroup_arrive();
  if constexpr (kZeroInit) tiled_mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTE_UNROLL
  for (int k = 0; k < size<2>(tCrA); ++k) {
    cute::gemm(tiled_mma, tCrA(_, _, k), tCrB(_, _, k), tCrC);
    tiled_mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  if constexpr (kWait >= 0) warpgroup_wait<kWait>();
  warpgroup_fence_operand(tCrC);
  if constexpr (kIsRS) warpgroup_fence_operand(const_cast<TA&>(tCrA));
}

// View a wgmma accumulator layout ((2, 2, V), MMA_M, MMA_N) as (rows, cols):
// rows = (2: +8 row half, MMA_M), cols = (2: adjacent pair, V: 8-col groups, MMA_N).
template <class Layout>
CUTE_HOST_DEVICE constexpr auto acc_rowcol(Layout const& l) {
  static_assert(rank(Layout{}) == 3 && rank<0>(Layout{}) == 3, "expects a wgmma accumulator layout");
  return make_layout(make_layout(get<0, 1>(l), get<1>(l)),
                     make_layout(get<0, 0>(l), get<0, 2>(l), get<2>(l)));
}

template <class Tensor_>
CUTE_DEVICE auto rowcol(Tensor_&& t) {
  return make_tensor(t.data(), acc_rowcol(t.layout()));
}

// Element-wise conversion of a register fragment (float -> bf16/fp16) into a new fragment of
// the same layout (paired conversions: F2FP.PACK).
template <class To, class Tensor_>
CUTE_DEVICE auto convert_fragment(Tensor_ const& src) {
  using From = typename Tensor_::value_type;
  constexpr int N = decltype(size(src))::value;
  static_assert(N % 2 == 0);
  Tensor dst = make_tensor<To>(src.layout());
  cutlass::NumericArrayConverter<To, From, 2> conv;
  auto const* in = reinterpret_cast<cutlass::Array<From, 2> const*>(raw_pointer_cast(src.data()));
  auto* out = reinterpret_cast<cutlass::Array<To, 2>*>(raw_pointer_cast(dst.data()));
  CUTE_UNROLL
  for (int i = 0; i < N / 2; ++i) out[i] = conv(in[i]);
  return dst;
}

// Distributed shared memory (a thread-block cluster's CTAs read each other's shared memory):
// the address of `addr` (this CTA's shared window) in the CTA of cluster rank `rank`, and loads
// from such an address. Valid only between cluster barriers that bracket the owner's writes and
// its exit.
CUTE_DEVICE uint32_t cluster_shared_address(uint32_t addr, uint32_t rank) {
  uint32_t out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(out) : "r"(addr), "r"(rank));
  return out;
}
CUTE_DEVICE float ld_cluster_shared(uint32_t addr) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
CUTE_DEVICE float4 ld_cluster_shared_v4(uint32_t addr) {
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

}  // namespace flashcore::sm90
