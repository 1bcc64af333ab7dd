// Compile-time description of one sm90 attention instantiation: tiles, wgmma atoms, shared-memory
// layouts, TMA descriptor types, shared storage and kernel parameters.
#pragma once

#include <cute/tensor.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cute/arch/mma_sm90.hpp>
#include <cutlass/gemm/collective/builders/sm90_common.inl>

#include "flashcore/api.h"
#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/qk_atom.cuh"
#include "flashcore/sm90/tile_scheduler.cuh"

namespace flashcore::sm90 {

// The body of Traits (below). kHeadDimV_: V's and O's head dim, kHeadDim_ (Q's and K's) or smaller.
template <class Element_, int kHeadDim_, int kBlockM_, int kBlockN_, int kStages_, int kConsumerWGs_,
          bool kCausal_, bool kIntraWGOverlap_, bool kPingpong_, bool kPersistent_, int kSplits_, int kCtasPerSm_,
          int kHeadDimV_>
struct TraitsBody {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  // V and O may have a smaller head dim of their own (DeepSeek-style 192/128): the PV GEMM, the O
  // accumulator and the O store then take only its columns.
  static constexpr int kHeadDimV = kHeadDimV_;
  static_assert(kHeadDimV <= kHeadDim && kHeadDimV % 64 == 0, "V head dim: a multiple of 64 up to Q/K's");
  static_assert(kHeadDimV == kHeadDim || kSplits_ == 1, "a V head dim of its own: no split-KV combine");
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kConsumerWGs = kConsumerWGs_;
  static constexpr bool kCausal = kCausal_;
  static constexpr bool kIntraWGOverlap = kIntraWGOverlap_;
  static constexpr bool kPingpong = kPingpong_ && kConsumerWGs > 1;
  static constexpr bool kPersistent = kPersistent_;
  static constexpr int kSplits = kSplits_;  // split-KV cluster size (1: one CTA per query tile)
  // CTAs resident on one SM (2 or 3: one-WG CTAs, so one CTA's tile edges -- Q wait, first
  // QK^T and softmax, epilogue -- overlap the others' key loops; the hardware interleaves them).
  static constexpr int kCtasPerSm = kCtasPerSm_;
  static_assert(kCtasPerSm == 1 || ((kCtasPerSm == 2 || kCtasPerSm == 3) && kConsumerWGs == 1 && kSplits == 1),
                "several CTAs per SM: one consumer warpgroup each, no split-KV cluster");
  // Shared memory one CTA may take: 227 KB alone; several CTAs share the SM's 228 KB, 1 KB each reserved.
  static constexpr int kSmemLimit = kCtasPerSm == 1 ? 227 * 1024 : 228 * 1024 / kCtasPerSm - 1024;
  static_assert(!kPingpong_ || kIntraWGOverlap_, "pingpong is implemented on the overlapped mainloop");
  static_assert(kBlockM == 64 * kConsumerWGs, "each consumer warpgroup owns 64 query rows");
  static_assert(kHeadDim % 64 == 0 && kBlockN % 16 == 0, "tile shape");
  static_assert(kStages >= 2);
  static_assert(kSplits == 1 || !kPersistent, "split-KV clusters run one query tile per CTA");
  // Split-KV: each CTA's normalised partial O (fp32) is staged for the cluster in the K ring,
  // which no wgmma reads any more once the key loop is done.
  static_assert(kSplits == 1 || kStages * kBlockN * int(sizeof(Element)) >= kBlockM * int(sizeof(float)),
                "split-KV stages the fp32 partial O in the K ring: stages * block_n * elem >= block_m * 4");

  static constexpr int kConsumerThreads = 128 * kConsumerWGs;
  static constexpr int kThreads = 128 + kConsumerThreads;
  // Consumer WGs sharing one query tile's key tiles (KeySplitTraits, key_split.cuh: more than 1),
  // and the consumer threads that hold distinct query rows and store O.
  static constexpr int kKeyWGs = 1;
  static constexpr int kEpilogueThreads = kConsumerThreads;
  // The softmax rescales O whenever a row's max grows (LazyRescaleTraits: only past a margin).
  static constexpr bool kLazyRescale = false;
  // Persistent CTAs walk whole query tiles (StreamKTraits, stream_k.cuh: equal key ranges, pieces of tiles).
  static constexpr bool kStreamK = false;
  // Every consumer WG walks the CTA's key tiles (WgKeyTraits: each only those its own rows see).
  static constexpr bool kWgKeys = false;
  static constexpr int kProducerRegs = RegisterSplit<kConsumerWGs, (kSplits > 1), kCtasPerSm>::kProducer;
  static constexpr int kConsumerRegs = RegisterSplit<kConsumerWGs, (kSplits > 1), kCtasPerSm>::kConsumer;
  // A CTA's setmaxnreg pool is what it launched with (__launch_bounds__ caps ptxas at the most
  // registers a thread that kCtasPerSm CTAs of kThreads fit, in steps of 8): a split asking for
  // more would hang the consumers' setmaxnreg.inc.
  static_assert(kCtasPerSm == 1 ||
                    kProducerRegs + kConsumerRegs * kConsumerWGs <= (1 + kConsumerWGs) * (65536 / (kThreads * kCtasPerSm) / 8 * 8),
                "register split exceeds the CTA's launch pool");

  using BM = Int<kBlockM>;
  using BN = Int<kBlockN>;
  using HD = Int<kHeadDim>;
  using HDV = Int<kHeadDimV>;
  using TileShapeQK = Shape<BM, BN, HD>;
  using TileShapePV = Shape<BM, HDV, BN>;
  using AtomLayout = Layout<Shape<Int<kConsumerWGs>, _1, _1>>;

  // S = Q K^T: both operands K-major in smem (SS). O += P V: P from registers, V MN-major (RS).
  using TiledMmaQK = decltype(make_tiled_mma(typename QkAtom<Element, kBlockM, kBlockN, kHeadDim>::type{},
                                             AtomLayout{}));
  static_assert(is_base_wgmma_n(kHeadDimV), "the PV GEMM's N (V's head dim) must be a base wgmma N size");
  using TiledMmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, TileShapePV, GMMA::Major::K, GMMA::Major::MN>(),
      AtomLayout{}));

  using SmemAtomQ = decltype(cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BM, HD>());
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtomQ{}, Shape<BM, HD>{}));
  using SmemAtomK = decltype(cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BN, HD>());
  using SmemLayoutK = decltype(tile_to_shape(SmemAtomK{}, Shape<BN, HD, Int<kStages>>{}));
  // V tile is (BN, Dv) row-major in gmem; the PV wgmma reads it as B = V^T (Dv, BN), MN-major.
  using SmemAtomVt = decltype(cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::MN, Element, HDV, BN>());
  // Row sums by the PV GEMM (mainloop.cuh pv_gemm): each V stage is followed by one more 64-column
  // swizzle atom of ones, and the overlapped mainloop's PV wgmma runs with N = Dv + 8 over V's
  // descriptors: its last 8 accumulator columns are the rows' sums of P as the GEMM read it, in
  // place of the softmax's per-score FADDs and the lazy softmax's rounding term. Measured against
  // the FADD sums at the power cap (benchmarks/NOTES.md, 2026-11-30): D64 16k -3.2 % energy per
  // FLOP, D128 16k -1.2 %. Only where the atoms fit beside the tiles and leave where O is staged as
  // it was (not the 64-row three-CTA tiles, for one), on overlapped tiles of Dv 64 or 128 (a
  // wgmma's N stops at 256) without split-KV.
  static constexpr int kBarrierBytes = 2048;  // barriers, the scheduler ring and alignment slack
  static constexpr int kBytesO = kBlockM * kHeadDimV * int(sizeof(Element));
  static constexpr int kUnpaddedQKV = int(sizeof(Element)) * (kBlockM * kHeadDim + kStages * kBlockN * (kHeadDim + kHeadDimV));
  static constexpr int kPadBytes = int(sizeof(Element)) * kStages * kBlockN * 64;
  // (kSeparateO below, as it would be without the atoms.)
  static constexpr bool kSeparateOUnpadded = kPersistent && kUnpaddedQKV + kBytesO + kBarrierBytes <= kSmemLimit;
  static constexpr bool kVPadFits =
      kUnpaddedQKV + kPadBytes + (kSeparateOUnpadded ? kBytesO : 0) + kBarrierBytes <= kSmemLimit &&
      (kSeparateOUnpadded || !kPersistent || kBlockM <= kBlockN);  // O staged in the V ring stays clear of the ones
  static constexpr int kVPad =
      (kIntraWGOverlap_ && kSplits_ == 1 && (kHeadDimV == 64 || kHeadDimV == 128) && kVPadFits) ? 64 : 0;
  using SmemLayoutVtAll = decltype(tile_to_shape(SmemAtomVt{}, Shape<Int<kHeadDimV + kVPad>, BN, Int<kStages>>{},
                                                 Step<_2, _1, _3>{}));
  using SmemLayoutVt = std::conditional_t<
      kVPad == 0, SmemLayoutVtAll,
      decltype(composition(SmemLayoutVtAll{},
                           make_layout(Shape<HDV, BN, Int<kStages>>{},
                                       make_stride(_1{}, Int<kHeadDimV + kVPad>{}, Int<(kHeadDimV + kVPad) * kBlockN>{}))))>;
  static constexpr int kVElems = int(cosize_v<SmemLayoutVtAll>);  // the V ring with its ones atoms
  using SmemLayoutV = decltype(composition(SmemLayoutVt{},
                                           make_ordered_layout(Shape<BN, HDV, Int<kStages>>{}, Step<_2, _1, _3>{})));

  // Global tensors: (seqlen, head_dim, head, batch), head_dim contiguous.
  using ShapeT = Shape<int32_t, int32_t, int32_t, int32_t>;
  using StrideT = Stride<int64_t, _1, int64_t, int64_t>;
  using GmemIn = decltype(make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeT{}, StrideT{}));
  using GmemOut = decltype(make_tensor(make_gmem_ptr(static_cast<Element*>(nullptr)), ShapeT{}, StrideT{}));

  using TmaQ = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemIn{}, SmemLayoutQ{}, Shape<BM, HD>{}, _1{}));
  using TmaK = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemIn{}, take<0, 2>(SmemLayoutK{}), Shape<BN, HD>{}, _1{}));
  using TmaV = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemIn{}, take<0, 2>(SmemLayoutV{}), Shape<BN, HDV>{}, _1{}));

  static constexpr uint32_t kBytesQ = kBlockM * kHeadDim * sizeof(Element);
  static constexpr uint32_t kBytesK = kBlockN * kHeadDim * sizeof(Element);
  static constexpr uint32_t kBytesV = kBlockN * kHeadDimV * sizeof(Element);

  // Persistent CTAs stage O in a buffer of its own when it fits: the next tile's Q then loads
  // while this tile's O is still being stored (else Q's buffer doubles as O's, and the next Q
  // waits for the store).
  static constexpr int kBytesQKV = int(sizeof(Element)) * (cosize_v<SmemLayoutQ> + cosize_v<SmemLayoutK> + kVElems);
  static constexpr bool kSeparateO = kPersistent && kBytesQKV + kBytesO + kBarrierBytes <= kSmemLimit;
  // Else a persistent CTA stages O in the V ring where it fits (FA3's order, e.g. D256 128x80): the
  // next tile's Q and first K then load during this epilogue, and only its V loads wait for the
  // O store. Q's buffer doubles as O's only for one-tile CTAs, which have no next Q to load.
  static constexpr bool kOInV = kPersistent && !kSeparateO &&
                                kBlockM * kHeadDimV <= (kVPad ? kHeadDimV * kBlockN : int(cosize_v<SmemLayoutVt>));  // not over the ones
  static constexpr bool kQHoldsOnlyQ = kSeparateO || kOInV;  // Q's buffer frees after the last QK^T
  // O in a buffer of its own is stored per consumer WG: each WG's 64 rows by its own TMA store, so
  // no WG waits for another at the end of a tile (a ping-pong schedule keeps its stagger). In the V
  // ring every WG's last PV must be done first, and in Q's buffer O keeps Q's layout: one store.
  // Not with 3 consumer WGs: at 160 registers a thread the per-WG store's bookkeeping spilled in
  // their key loop (D64 192x128: 4 STL / 10 LDL there instead of 0 / 3).
  static constexpr bool kStorePerWG = kSeparateO && kConsumerWGs < 3;
  // O's swizzle atom is Q's where their head dims agree (Q's layout then holds O in Q's buffer).
  using SmemAtomO = decltype(cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BM, HDV>());
  using SmemLayoutOWg = decltype(tile_to_shape(SmemAtomO{}, Shape<_64, HDV>{}));  // one WG's rows
  using SmemLayoutO = std::conditional_t<kStorePerWG, decltype(tile_to_shape(SmemLayoutOWg{}, Shape<BM, HDV>{})),
                                         decltype(tile_to_shape(SmemAtomO{}, Shape<BM, HDV>{}))>;  // per WG: WG w's rows at w * 64 * HDV
  using SmemLayoutOStore = std::conditional_t<kStorePerWG, SmemLayoutOWg, SmemLayoutO>;  // one TMA store's
  using OStoreRows = std::conditional_t<kStorePerWG, _64, BM>;
  using TmaO = decltype(make_tma_copy(SM90_TMA_STORE{}, GmemOut{}, SmemLayoutOStore{}, Shape<OStoreRows, HDV>{}, _1{}));
  static constexpr int kOElems = kSeparateO ? cosize_v<SmemLayoutO> : 8;

  struct SharedStorage {
    alignas(1024) cute::array_aligned<Element, cute::cosize_v<SmemLayoutQ>> q;  // Q (and O unless kQHoldsOnlyQ)
    alignas(1024) cute::array_aligned<Element, cute::cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array_aligned<Element, kVElems> v;  // V ring (and O if kOInV)
    alignas(1024) cute::array_aligned<Element, kOElems> o;  // O staging when kSeparateO
    alignas(16) uint64_t bar_q;        // Q tile landed (tx barrier)
    uint64_t bar_q_empty;              // consumers done reading Q (kQHoldsOnlyQ: the next Q may load)
    uint64_t bar_o;                    // O tile stored: its staging buffer (Q's or V's) free again
    uint64_t full_k[kStages], empty_k[kStages];
    uint64_t full_v[kStages], empty_v[kStages];
    uint64_t sched_full[2], sched_empty[2];  // dynamic tile scheduler's next-tile ring
    int next_tile[2];
    float lse_part[kSplits > 1 ? kBlockM : 1];  // split-KV: this CTA's partial LSE per row
  };
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes <= kSmemLimit, "shared memory budget");

  struct Params {
    TmaQ tma_q;
    TmaK tma_k;
    TmaV tma_v;
    TmaO tma_o;
    // TMA coordinate shapes of Q (also O's) and K (also V's): V and O share them because every
    // tile takes head-dim coordinate 0 (a tile spans the variant's whole head dim, HD or HDV,
    // whichever of d / dv the shape holds); the bounds TMA zero-fills and clips at are the tensor maps'.
    ShapeT shape_q, shape_k;
    float* lse;
    SeqLayout seq;        // lengths, masks, packed sequences (api.h seq_span gives a tile's)
    Element* o;           // O in global memory, for the thread stores (packed sequences, split-KV)
    int64_t o_row_stride, o_head_stride, o_batch_stride;
    int head_dim_v;       // the call's V/O head dim (<= kHeadDim): predicated stores skip the padding
    int head_ratio;       // query heads per K/V head (grouped-query attention; 1 = MHA)
    cutlass::FastDivmod head_ratio_div;  // query head -> K/V head without a runtime division (host-made)
    float softcap_scale;  // 0: no softcap; else scores become tanh(s * softcap_scale) (api.h)
    float scale_log2;
    TileGeometry geo;
    void* workspace;
  };

  // GQA packing (PackGqaTraits, pack_gqa.cuh) derives from these traits; here every tile is one
  // query head's rows and the grid is (query tiles, query heads, batch).
  static constexpr bool kPackGqa = false;
  static TileGeometry geometry(FwdParams const& p) { return make_tile_geometry<kBlockM>(p); }
  static char const* cannot_pack(FwdParams const&) { return nullptr; }

  static Params make_params(FwdParams const& p) {
    int const heads_k = p.heads_k > 0 ? p.heads_k : p.heads;  // 0: a caller predating GQA, i.e. MHA
    // A smaller head dim than the tile's: TMA zero-fills the columns past it on load (zeros add
    // nothing to Q.K^T and give zero O columns) and clips them on the O store.
    // V (and so O) may have a head dim of its own (DeepSeek-style 192/128): its maps get their own extent.
    int const d = p.head_dim > 0 ? p.head_dim : kHeadDim;
    int const dv = p.head_dim_v > 0 ? p.head_dim_v : d;
    // Packed sequences: one "batch" of total rows; each tile offsets its rows (seq_span). Their
    // batch stride is 0, which TMA refuses: the lone batch index never steps, any aligned one does.
    bool const packed = p.cu_seqlens_q != nullptr;
    int const q_rows = packed ? p.total_q : p.seqlen_q, k_rows = packed ? p.total_k : p.seqlen_k;
    int const batch = packed ? 1 : p.batch;
    auto mQ = make_tensor(make_gmem_ptr(static_cast<Element const*>(p.q)),
                          make_shape(q_rows, d, p.heads, batch),
                          make_stride(p.q_row_stride, _1{}, p.q_head_stride, packed ? p.q_row_stride : p.q_batch_stride));
    auto mK = make_tensor(make_gmem_ptr(static_cast<Element const*>(p.k)),
                          make_shape(k_rows, d, heads_k, batch),
                          make_stride(p.k_row_stride, _1{}, p.k_head_stride, packed ? p.k_row_stride : p.k_batch_stride));
    auto mV = make_tensor(make_gmem_ptr(static_cast<Element const*>(p.v)),
                          make_shape(k_rows, dv, heads_k, batch),
                          make_stride(p.v_row_stride, _1{}, p.v_head_stride, packed ? p.v_row_stride : p.v_batch_stride));
    auto mO = make_tensor(make_gmem_ptr(static_cast<Element*>(p.o)),
                          make_shape(q_rows, dv, p.heads, batch),
                          make_stride(p.o_row_stride, _1{}, p.o_head_stride, packed ? p.o_row_stride : p.o_batch_stride));
    return Params{
        make_tma_copy(SM90_TMA_LOAD{}, mQ, SmemLayoutQ{}, Shape<BM, HD>{}, _1{}),
        make_tma_copy(SM90_TMA_LOAD{}, mK, take<0, 2>(SmemLayoutK{}), Shape<BN, HD>{}, _1{}),
        make_tma_copy(SM90_TMA_LOAD{}, mV, take<0, 2>(SmemLayoutV{}), Shape<BN, HDV>{}, _1{}),
        make_tma_copy(SM90_TMA_STORE{}, mO, SmemLayoutOStore{}, Shape<OStoreRows, HDV>{}, _1{}),
        mQ.shape(), mK.shape(), p.lse, seq_layout(p), static_cast<Element*>(p.o), p.o_row_stride, p.o_head_stride,
        packed ? int64_t(0) : p.o_batch_stride, dv,
        p.heads / heads_k, cutlass::FastDivmod(p.heads / heads_k), p.softcap_scale, p.scale_log2,
        make_tile_geometry<kBlockM>(p), p.workspace};
  }
};

// The traits of a variant whose V shares Q's and K's head dim: a struct of its own name (not an
// alias of TraitsBody), so these kernels' mangled names and code stay those of before V could differ.
template <class Element_, int kHeadDim_, int kBlockM_, int kBlockN_, int kStages_, int kConsumerWGs_,
          bool kCausal_, bool kIntraWGOverlap_, bool kPingpong_ = false, bool kPersistent_ = false,
          int kSplits_ = 1, int kCtasPerSm_ = 1>
struct Traits : TraitsBody<Element_, kHeadDim_, kBlockM_, kBlockN_, kStages_, kConsumerWGs_, kCausal_, kIntraWGOverlap_,
                           kPingpong_, kPersistent_, kSplits_, kCtasPerSm_, kHeadDim_> {};
// A V (and O) head dim of its own, below Q's and K's (e.g. DeepSeek's 192/128).
template <class Element_, int kHeadDim_, int kBlockM_, int kBlockN_, int kStages_, int kConsumerWGs_,
          bool kCausal_, bool kIntraWGOverlap_, bool kPingpong_, bool kPersistent_, int kSplits_, int kCtasPerSm_,
          int kHeadDimV_>
struct TraitsDv : TraitsBody<Element_, kHeadDim_, kBlockM_, kBlockN_, kStages_, kConsumerWGs_, kCausal_,
                             kIntraWGOverlap_, kPingpong_, kPersistent_, kSplits_, kCtasPerSm_, kHeadDimV_> {};

// Lazy rescaling of O (softmax.cuh OnlineSoftmax::kLazyMargin): a row keeps its running max, and O
// and the row sum their scale, until a key tile's max exceeds it by more than the margin, so the
// key loop's rescale of O (Dv / 2 FMULs a thread per tile) runs only where some row of a warp grew
// that much. Its own type, so the kernels without it keep their mangled names and code.
template <class Base>
struct LazyRescaleTraits : Base {
  static constexpr bool kLazyRescale = true;
};

// Per-WG key ranges (masked multi-WG tiles whose key tiles are narrower than the query tile): each
// consumer WG walks only the key tiles its own 64 rows see, so under a causal mask the WGs above
// the diagonal skip the tiles right of their rows instead of computing them fully masked; the WG
// passes a skipped slot itself, waiting for its fill and releasing it unread (mainloop.cuh). Its
// own type, so the kernels without it keep their mangled names and code.
template <class Base>
struct WgKeyTraits : Base {
  static_assert(Base::kConsumerWGs > 1 && Base::kKeyWGs == 1 && Base::kCausal && Base::kSplits == 1 &&
                    !Base::kStreamK && !Base::kPackGqa,
                "per-WG key ranges: masked tiles of several row WGs, no split-KV, key split, stream-K or GQA packing");
  static constexpr bool kWgKeys = true;
};

// K/V ring position: stage index and the phase parity of its barriers.
struct PipeState {
  int index = 0;
  uint32_t phase = 0;
  CUTE_DEVICE void advance(int stages) {
    if (++index == stages) { index = 0; phase ^= 1; }
  }
  // `step` (<= stages) slots on: a key-split WG's next tile in the ring (key_split.cuh).
  CUTE_DEVICE void advance(int stages, int step) {
    index += step;
    if (index >= stages) { index -= stages; phase ^= 1; }
  }
};

}  // namespace flashcore::sm90
