// Warp-specialised sm90 attention forward kernel skeleton.
//   WG0 (producer): setmaxnreg.dec; one warp, one elected lane issues all TMA loads.
//   WG1..n (consumers): setmaxnreg.inc; wgmma mainloop + online softmax + epilogue, 64 rows each.
// Split-KV variants launch kSplits CTAs per query tile that combine their partial results in the
// epilogue: as a cluster, through distributed shared memory (SplitKvTileScheduler,
// EpilogueSplitCombine), or through global scratch (SplitKvGlobalTileScheduler, EpilogueSplitGlobal).
// Key-split variants split a 64-row tile's key tiles among the CTA's consumer WGs, which combine
// in shared memory (KeySplitTraits, EpilogueKeySplit).
// Parts are template parameters: Mainloop, Epilogue, TileScheduler (the softmax type comes with
// the mainloop, which owns the accumulator layouts).
#pragma once

#include <cuda_runtime.h>

#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/cutlass.h>
#include <cute/arch/cluster_sm90.hpp>

#include "flashcore/api.h"
#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/epilogue.cuh"
#include "flashcore/sm90/epilogue_combine.cuh"
#include "flashcore/sm90/epilogue_split_global.cuh"
#include "flashcore/sm90/key_split.cuh"
#include "flashcore/sm90/mainloop.cuh"
#include "flashcore/sm90/pack_gqa.cuh"
#include "flashcore/sm90/stream_k.cuh"
#include "flashcore/sm90/tile_scheduler.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

// A tile scheduler from the kernel's params: most take the tile grid and the scratch; the stream-K
// one (stream_k.cuh) also reads the call's lengths.
template <class Scheduler, class Params>
CUTE_DEVICE Scheduler make_scheduler(Params const& p) {
  if constexpr (std::is_constructible_v<Scheduler, Params const&>) return Scheduler(p);
  else return Scheduler(p.geo, p.workspace);
}

template <class Traits_, class Mainloop, class Epilogue, class TileScheduler>
struct KernelWS {
  using Traits = Traits_;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using Softmax = typename Mainloop::Softmax;
  static constexpr int kThreads = Traits::kThreads;

  CUTE_DEVICE void operator()(Params const& p, char* smem) const {
    SharedStorage& ss = *reinterpret_cast<SharedStorage*>(smem);
    int const warp_group = cutlass::canonical_warp_group_idx();
    int const warp_idx = cutlass::canonical_warp_idx_sync();

    Mainloop::init_smem(ss, int(threadIdx.x), kThreads);
    if (warp_idx == 0 && cute::elect_one_sync()) {
      Mainloop::prefetch_descriptors(p);
      Mainloop::init_barriers(ss);
      TileScheduler::init(ss);
      cutlass::arch::fence_barrier_init();
    }
    __syncthreads();
    // Launched as a programmatic dependent (FwdParams::programmatic_launch), the prologue above may
    // have run while the previous kernel finished; from here on global memory is read and written.
    // The next kernel may then start its own prologue on SMs this grid leaves free.
    wait_for_previous_grid();
    allow_next_grid();

    TileScheduler const scheduler = make_scheduler<TileScheduler>(p);
    PipeState k_state, v_state;

    if (warp_group == 0) {
      cutlass::arch::warpgroup_reg_dealloc<Traits::kProducerRegs>();
      if (warp_idx == 0 && cute::elect_one_sync()) {
        int tile_iter = 0;
        for (WorkTile w = scheduler.initial(); scheduler.valid(w); ++tile_iter) {
          Mainloop::load(p, ss, w, k_state, v_state, tile_iter);
          w = scheduler.producer_next(ss, w, tile_iter);
        }
      }
      Epilogue::producer_finish();
    } else {
      cutlass::arch::warpgroup_reg_alloc<Traits::kConsumerRegs>();
      int const tid = int(threadIdx.x) - 128;
      WgScheduler<Traits::kConsumerWGs, Traits::kPingpong>::init(tid / 128);
      typename Traits::TiledMmaPV tiled_mma_pv;
      int tile_iter = 0;
      WorkTile w = scheduler.initial();
      SeqSpan seq = seq_span(p.seq, w.batch, w.head);  // once per tile, for mainloop and epilogue
      for (; scheduler.valid(w); ++tile_iter) {
        Tensor tOrO = partition_fragment_C(tiled_mma_pv, Shape<typename Traits::BM, typename Traits::HDV>{});
        Softmax softmax;
        if (Mainloop::idle(p, seq, w, tid)) {
          clear(tOrO);
          Mainloop::idle_tile(p, ss, w, seq, k_state, v_state, tile_iter, tid);
        } else {
          Mainloop::mma(p, ss, w, seq, k_state, v_state, tile_iter, tid, tOrO, softmax);
        }
        // The next tile and its span before this epilogue: a packed sequence's span is read from
        // global memory, and those loads then overlap the epilogue instead of stalling the next
        // mainloop. (The sentinel past the last tile reads batch 0's, which exists.)
        WorkTile const next = scheduler.consumer_next(ss, w, tile_iter);
        SeqSpan const next_seq = seq_span(p.seq, next.batch, next.head);
        Epilogue::store(p, ss, w, seq, tid, tOrO, softmax);
        w = next;
        seq = next_seq;
      }
      Epilogue::finish(tid);
    }
  }
};

template <class Kernel>
__global__ void __launch_bounds__(Kernel::kThreads, Kernel::Traits::kCtasPerSm)
    kernel_entry(__grid_constant__ typename Kernel::Params const params) {
#if defined(__CUDA_ARCH__)  // the host pass only needs the launch stub: skip instantiating the body there
  extern __shared__ __align__(1024) char smem[];
  Kernel{}(params, smem);
#endif
}

// Zeroes the global split-KV combine's per-tile counters (`n` ints) before the attention kernel,
// which launches as its programmatic dependent when PDL is on: the attention kernel's launch and
// prologue then overlap this one (a cudaMemsetAsync is a graph node the next kernel waits for in
// full). It lets its dependent launch at once; the dependent's wait_for_previous_grid still waits
// for these stores. Launched without the attribute itself, so it runs after all earlier work.
template <class Kernel>
__global__ void zero_split_counters(int* counters, int n) {
  allow_next_grid();
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) counters[i] = 0;
}

// The instantiation entry point. Element: cutlass::bfloat16_t or cutlass::half_t. kPackGqa: the
// query heads of a GQA group packed into the rows of one tile (pack_gqa.cuh). kHeadDimV: V's and
// O's head dim when below Q's and K's (0: the same). kConsumerWGs: the WGs owning distinct query
// rows (kBlockM / 64); kKeyWGs > 1: that many WGs share each 64-row tile's key tiles (key_split.cuh).
// kLazyRescale: O is rescaled only when a row's max grows past a margin (LazyRescaleTraits).
// kStreamK: a persistent non-causal kernel whose CTAs walk equal key ranges (stream_k.cuh).
// kWgKeys: each consumer WG walks only the key tiles its own rows see (WgKeyTraits).
template <class Element, int kHeadDim, int kBlockM, int kBlockN, int kStages = 2, int kConsumerWGs = 2,
          bool kCausal = false, bool kIntraWGOverlap = true, bool kPersistent = false, bool kPingpong = false,
          int kSplits = 1, int kCtasPerSm = 1, bool kSplitGlobal = false, bool kPackGqa = false, int kHeadDimV = 0,
          int kKeyWGs = 1, bool kLazyRescale = false, bool kStreamK = false, bool kWgKeys = false>
struct FwdKernel {
  using BaseTraits = std::conditional_t<
      kHeadDimV == 0 || kHeadDimV == kHeadDim,
      sm90::Traits<Element, kHeadDim, kBlockM, kBlockN, kStages, kConsumerWGs, kCausal, kIntraWGOverlap, kPingpong,
                   kPersistent, kSplits, kCtasPerSm>,
      sm90::TraitsDv<Element, kHeadDim, kBlockM, kBlockN, kStages, kConsumerWGs, kCausal, kIntraWGOverlap,
                     kPingpong, kPersistent, kSplits, kCtasPerSm, kHeadDimV == 0 ? kHeadDim : kHeadDimV>>;
  using RowTraits = std::conditional_t<kPackGqa, PackGqaTraits<BaseTraits>, BaseTraits>;
  using SplitTraits = std::conditional_t<(kKeyWGs > 1), KeySplitTraits<RowTraits, kKeyWGs>, RowTraits>;
  using RescaleTraits = std::conditional_t<kLazyRescale, LazyRescaleTraits<SplitTraits>, SplitTraits>;
  using WalkTraits = std::conditional_t<kStreamK, StreamKTraits<RescaleTraits>, RescaleTraits>;
  using Traits = std::conditional_t<kWgKeys, WgKeyTraits<WalkTraits>, WalkTraits>;
  static_assert(!kStreamK || (kPersistent && !kCausal && kSplits == 1 && !kPackGqa && kKeyWGs == 1 && kCtasPerSm == 1),
                "stream-K: persistent non-causal tiles, one CTA per SM, no split-KV, key split or GQA packing");
  static_assert(!(kLazyRescale && kKeyWGs > 1), "the key-split combine does not carry the lazy softmax's rounding sums");
  // Persistent tiles of unequal cost are handed out dynamically: causal ones (longest first), and
  // those of multi-WG kernels where a sequence's last query tile leaves WGs idle (mainloop.cuh
  // idle) or sequences differ in length (uneven_tiles). Statically, CTA b takes tiles b, b + SMs,
  // ...: with 132 SMs a multiple of the query tiles per head (1024 rows in 192-row tiles: 6), a CTA
  // then draws only the cheap last tiles or none of them, and the others bound the kernel as if
  // every tile were whole (D64 1k 192x128: 332 -> 312 us, 2026-11-29).
  static constexpr bool kDynamicWhenUneven = !kCausal && kConsumerWGs > 1;
  // Split-KV: kSplits CTAs per query tile, a cluster or combining through global memory.
  static_assert(!kSplitGlobal || kSplits > 1, "a global combine is a split-KV combine");
  static constexpr bool kCluster = kSplits > 1 && !kSplitGlobal;
  using Scheduler = std::conditional_t<
      kStreamK, StreamKTileScheduler<kBlockM, kBlockN, 4 * kConsumerWGs>,
      std::conditional_t<kSplitGlobal, SplitKvGlobalTileScheduler<kCausal, kSplits>,
      std::conditional_t<kCluster, SplitKvTileScheduler<kCausal, kSplits>,
      std::conditional_t<!kPersistent, PlainTileScheduler<kCausal>,
                         std::conditional_t<(kCausal || kDynamicWhenUneven),
                                            DynamicPersistentTileScheduler<kCausal, 4 * kConsumerWGs, kDynamicWhenUneven>,
                                            StaticPersistentTileScheduler<kCausal>>>>>>;
  using Epilogue = std::conditional_t<
      kStreamK, EpilogueStreamK<Traits>,
      std::conditional_t<kSplitGlobal, EpilogueSplitGlobal<Traits>,
      std::conditional_t<kCluster, EpilogueSplitCombine<Traits>,
                         std::conditional_t<(kKeyWGs > 1), EpilogueKeySplit<Traits>, EpilogueTmaStore<Traits>>>>>;
  using SplitWorkspace = SplitGlobalWorkspace<kSplits, kBlockM, kHeadDim>;
  using StreamKScratch = StreamKWorkspace<kBlockM, Traits::kHeadDimV>;
  // The global combine's scratch grows with the query tiles; it serves problems of few of them
  // (codegen/families.py SM90_MAX_SPLIT_WORKSPACE and its reason mirror this for dispatch).
  static constexpr size_t kMaxSplitWorkspace = size_t(2) << 30;
  using Kernel = KernelWS<Traits, MainloopTmaWgmma<Traits>, Epilogue, Scheduler>;

  // TMA tensor maps need 16-byte aligned base addresses and 16-byte multiple strides.
  static bool tma_compatible(FwdParams const& p) {
    auto aligned = [](void const* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
    auto stride_ok = [](int64_t s) { return (s * int64_t(sizeof(Element))) % 16 == 0; };
    return aligned(p.q) && aligned(p.k) && aligned(p.v) && aligned(p.o) && stride_ok(p.q_row_stride) &&
           stride_ok(p.q_head_stride) && stride_ok(p.q_batch_stride) && stride_ok(p.k_row_stride) &&
           stride_ok(p.k_head_stride) && stride_ok(p.k_batch_stride) && stride_ok(p.v_row_stride) &&
           stride_ok(p.v_head_stride) && stride_ok(p.v_batch_stride) && stride_ok(p.o_row_stride) &&
           stride_ok(p.o_head_stride) && stride_ok(p.o_batch_stride);
  }

  // Why this variant cannot run a call (nullptr: it can).
  static char const* can_implement(FwdParams const& p) {
    if (!tma_compatible(p))
      return "the sm90 kernels load through TMA, which needs 16-byte aligned q/k/v/o pointers and strides that are "
             "multiples of 16 bytes";
    if (char const* why = Traits::cannot_pack(p)) return why;
    if (Traits::kHeadDimV < kHeadDim && p.head_dim_v > Traits::kHeadDimV)
      return "this variant's V and output head dim is below its query/key head dim: the call's value head dim "
             "exceeds it";
    if (kSplitGlobal && workspace_bytes(p) > kMaxSplitWorkspace)
      return "this split-KV variant combines through global scratch, which would exceed 2 GB for the call's query "
             "tiles: it serves problems with few query tiles";
    return nullptr;
  }

  // Device scratch the call needs (uninitialised; run() zeroes what must start at zero): the
  // dynamic scheduler's tile counter, or the global split-KV combine's counters and partials.
  static size_t workspace_bytes(FwdParams const& p) {
    TileGeometry const g = Traits::geometry(p);
    if constexpr (kSplitGlobal) return SplitWorkspace::bytes(g);
    else if constexpr (kStreamK) {
      if (uneven_tiles(p)) return Scheduler::Dynamic::workspace_bytes(g);
      return stream_k_call(p) ? StreamKScratch::bytes(p.num_sms) : 0;
    }
    else if constexpr (kDynamicWhenUneven && kPersistent) return uneven_tiles(p) ? Scheduler::workspace_bytes(g) : 0;
    else return Scheduler::workspace_bytes(g);
  }
  static size_t zeroed_workspace_bytes(FwdParams const& p) {
    if constexpr (kSplitGlobal) return SplitWorkspace::zeroed_bytes(Traits::geometry(p));
    else if constexpr (kStreamK) return stream_k_call(p) ? StreamKScratch::zeroed_bytes(p.num_sms) : workspace_bytes(p);
    else return workspace_bytes(p);
  }
  // Does a stream-K kernel cut this call into equal key ranges? Whole, equal tiles (even_tiles, as
  // the device tests it) that outnumber the persistent CTAs and are no multiple of them (a multiple
  // runs in whole rounds as it is), over enough keys to pay for the pieces (kStreamKMinKeys). A
  // caller that leaves num_sms unset gets the static schedule.
  static bool stream_k_call(FwdParams const& p) {
    if constexpr (!kStreamK) {
      return false;
    } else {
      int const tiles = Traits::geometry(p).num_tiles;
      return !uneven_tiles(p) && p.seqlen_k >= kStreamKMinKeys && p.num_sms > 0 && tiles > p.num_sms &&
             tiles % p.num_sms != 0;
    }
  }
  // Do the call's query tiles differ in cost (non-causal)? Packed sequences of different lengths,
  // or a last query tile with fewer rows than the block (its WGs past the end idle).
  static bool uneven_tiles(FwdParams const& p) { return !even_tiles<kBlockM>(seq_layout(p)); }

  static cudaError_t run(FwdParams const& p, cudaStream_t stream) {
    if (p.batch <= 0 || p.heads <= 0 || p.seqlen_q <= 0) return cudaSuccess;
    if (!tma_compatible(p) || Traits::cannot_pack(p) != nullptr) return cudaErrorInvalidValue;
    if (Traits::kHeadDimV < kHeadDim && p.head_dim_v > Traits::kHeadDimV) return cudaErrorInvalidValue;
    if (workspace_bytes(p) > 0 && p.workspace == nullptr) return cudaErrorInvalidValue;
    if (size_t const zeroed = zeroed_workspace_bytes(p); zeroed > 0) {
      if constexpr (kSplitGlobal || kStreamK) {
        int const n = int(zeroed / sizeof(int));
        zero_split_counters<Kernel><<<(n + 255) / 256 < 132 ? (n + 255) / 256 : 132, 256, 0, stream>>>(
            static_cast<int*>(p.workspace), n);
        if (cudaError_t const z = cudaGetLastError(); z != cudaSuccess) return z;
      } else {
        cudaError_t const z = cudaMemsetAsync(p.workspace, 0, zeroed, stream);
        if (z != cudaSuccess) return z;
      }
    }
    CUresult maps = CUDA_SUCCESS;
    auto params = [&] {
      if constexpr (kPackGqa) return Traits::make_params(p, &maps);
      else return Traits::make_params(p);
    }();
    if (maps != CUDA_SUCCESS) return cudaErrorInvalidValue;
    auto kernel = &kernel_entry<Kernel>;
    constexpr int smem = Traits::kSmemBytes;
    cudaError_t e = set_max_dynamic_smem_once<Kernel>(kernel, smem);
    if (e != cudaSuccess) return e;
    if constexpr (kCtasPerSm > 1) {  // the whole unified L1/smem as smem, or the driver may fit only one CTA
      static cudaError_t const carveout =
          cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared));
      if (carveout != cudaSuccess) return carveout;
    }
    int num_sms = p.num_sms;
    if (kPersistent && num_sms <= 0) {  // callers outside the binding may leave it unset
      int dev = 0;
      cudaGetDevice(&dev);
      cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev);
    }
    dim3 grid = Scheduler::grid(params.geo, num_sms * kCtasPerSm);  // persistent: every resident CTA
    cudaLaunchAttribute attr[2];
    unsigned num_attrs = 0;
    if constexpr (kCluster) {
      dim3 const cluster = Scheduler::cluster();
      attr[num_attrs].id = cudaLaunchAttributeClusterDimension;
      attr[num_attrs].val.clusterDim.x = cluster.x;
      attr[num_attrs].val.clusterDim.y = cluster.y;
      attr[num_attrs].val.clusterDim.z = cluster.z;
      ++num_attrs;
    }
    if (p.programmatic_launch) {
      attr[num_attrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[num_attrs].val.programmaticStreamSerializationAllowed = 1;
      ++num_attrs;
    }
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = dim3(Kernel::kThreads, 1, 1);
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = attr;
    config.numAttrs = num_attrs;
    e = cudaLaunchKernelEx(&config, kernel, params);
    return e != cudaSuccess ? e : cudaGetLastError();
  }
};

template <class Element, int kHeadDim, int kBlockM, int kBlockN, int kStages, int kConsumerWGs, bool kCausal,
          bool kIntraWGOverlap = true, bool kPersistent = false, bool kPingpong = false, int kSplits = 1,
          int kCtasPerSm = 1, bool kSplitGlobal = false, bool kPackGqa = false, int kHeadDimV = 0, int kKeyWGs = 1,
          bool kLazyRescale = false, bool kStreamK = false, bool kWgKeys = false>
cudaError_t run_fwd(FwdParams const& p, cudaStream_t stream) {
  return FwdKernel<Element, kHeadDim, kBlockM, kBlockN, kStages, kConsumerWGs, kCausal, kIntraWGOverlap,
                   kPersistent, kPingpong, kSplits, kCtasPerSm, kSplitGlobal, kPackGqa, kHeadDimV, kKeyWGs,
                   kLazyRescale, kStreamK, kWgKeys>::run(p, stream);
}

}  // namespace flashcore::sm90
