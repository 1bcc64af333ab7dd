// Mainloop: the producer's TMA loads (Q once per tile, K/V through a kStages ring of mbarriers)
// and the consumers' wgmma loop: S = Q K^T (SS), online softmax, O += P V (RS, P in registers).
// Key tiles are walked from the last to the first, so masked tiles (seqlen_k end, causal
// diagonal) come first; a left window edge makes the last tiles walked masked as well. With kIntraWGOverlap the next QK^T is issued before this tile's PV and
// the softmax runs while the PV wgmma is in flight (FA3 Algorithm 2).
#pragma once

#include <cutlass/arch/barrier.h>

#include "flashcore/sm90/common.cuh"
#include "flashcore/sm90/pack_gqa.cuh"
#include "flashcore/sm90/softmax.cuh"
#include "flashcore/sm90/sum_pv_wgmma.cuh"
#include "flashcore/sm90/tile_scheduler.cuh"
#include "flashcore/sm90/traits.cuh"

namespace flashcore::sm90 {

template <class Traits>
struct MainloopTmaWgmma {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using BM = typename Traits::BM;
  using BN = typename Traits::BN;
  using HD = typename Traits::HD;
  using HDV = typename Traits::HDV;
  static constexpr int kBlockM = Traits::kBlockM;
  static constexpr int kBlockN = Traits::kBlockN;
  static constexpr int kStages = Traits::kStages;
  static constexpr bool kCausal = Traits::kCausal;
  using FullBar = cutlass::arch::ClusterTransactionBarrier;
  using EmptyBar = cutlass::arch::ClusterBarrier;

  // Rows each consumer thread owns in a (kBlockM x N) accumulator.
  static constexpr int kRowsPerThread = 2;
  // Causal tiles at 160 registers or fewer select masked elements out rather than rewrite them
  // (softmax.cuh). Nsight Compute A/B, D64 192x128 lazy (benchmarks/NOTES.md, 2026-11-27 20:53-,
  // call 3): causal 2k / 4k / 8k -8.2 / -5.8 / -4.8 %, non-causal 1k / 4k +1.4 / +1.2 % (the grid's
  // non-causal problems have no masked tile; they only paid the changed register allocation).
  static constexpr bool kSelectMasked = kCausal && Traits::kConsumerRegs <= 160;
  // Row sums by the PV GEMM (traits.cuh kVPad): the overlapped mainloop's PV wgmma runs with N = Dv + 8
  // over V's descriptors, whose stage carries a ones atom past V's columns; the accumulator's last
  // 8 columns (4 floats a thread: rows r and r + 8, two columns each, all alike) are the row sums.
  static constexpr bool kSumByPV = Traits::kVPad > 0 && Traits::kKeyWGs == 1;  // (kVPad: overlapped tiles only)
  using Softmax = OnlineSoftmax<kRowsPerThread, Traits::kLazyRescale, Element, kSelectMasked, kSumByPV>;
  static constexpr int kPVN = Traits::kHeadDimV + 8;
  // Shared memory the consumers read but no load fills (the ones atoms), before the kernel's first
  // __syncthreads; every thread takes part.
  CUTE_DEVICE static void init_smem(SharedStorage& ss, int tid, int threads) {
    if constexpr (kSumByPV) {
      constexpr int kStage = (Traits::kHeadDimV + Traits::kVPad) * kBlockN;
      CUTE_UNROLL
      for (int s = 0; s < kStages; ++s) {
        for (int i = tid; i < Traits::kVPad * kBlockN; i += threads) {
          ss.v[s * kStage + Traits::kHeadDimV * kBlockN + i] = Element(1.f);
        }
      }
      cutlass::arch::fence_view_async_shared();
    }
  }
  // The descriptor's leading byte offset (bits 16-29, 16-byte units) is the stride between V's 64-column
  // atoms; CuTe leaves it unset where Dv is one atom (D64), and the N = Dv + 8 wgmma reads the ones atom there.
  CUTE_DEVICE static uint64_t with_atom_stride(uint64_t desc) {
    constexpr uint64_t kLbo = uint64_t(64 * kBlockN * sizeof(Element)) >> 4;
    static_assert(kLbo < (1u << 14), "leading byte offset field");
    return (desc & ~(uint64_t(0x3fff) << 16)) | (kLbo << 16);
  }
  // PV (O += P V); with kSumByPV one wgmma of N = Dv + 8 a k-block also adds the row sums to `sum`.
  template <class TA, class TB, class TC>
  CUTE_DEVICE static void pv_gemm(TA const& tOrP, TB const& tOrV, TC& tOrO, float (&sum)[4]) {
    typename Traits::TiledMmaPV tiled_mma_pv;
    if constexpr (!kSumByPV) {
      wg_gemm<false, -1>(tiled_mma_pv, tOrP, tOrV, tOrO);
    } else {
      static_assert(decltype(size(tOrO))::value == kPVN / 2 - 4, "one PV atom a consumer WG");
      warpgroup_fence_operand(const_cast<TA&>(tOrP));
      warpgroup_fence_operand(tOrO);
      CUTE_UNROLL
      for (int i = 0; i < 4; ++i) warpgroup_fence_operand(sum[i]);
      warpgroup_arrive();
      CUTE_UNROLL
      for (int k = 0; k < size<2>(tOrP); ++k) {
        Tensor a = recast<uint32_t>(tOrP(_, _0{}, k));
        uint32_t const regs[4] = {a(0), a(1), a(2), a(3)};
        SumPvWgmma<kPVN, Element>::fma(regs, with_atom_stride(uint64_t(tOrV(_0{}, _0{}, k))), tOrO, sum);
      }
      warpgroup_commit_batch();
      warpgroup_fence_operand(tOrO);
      CUTE_UNROLL
      for (int i = 0; i < 4; ++i) warpgroup_fence_operand(sum[i]);
      warpgroup_fence_operand(const_cast<TA&>(tOrP));
    }
  }

  CUTE_DEVICE static void init_barriers(SharedStorage& ss) {
    FullBar::init(&ss.bar_q, 1);
    EmptyBar::init(&ss.bar_q_empty, Traits::kConsumerWGs);
    EmptyBar::init(&ss.bar_o, 1);
    CUTE_UNROLL
    for (int s = 0; s < kStages; ++s) {
      FullBar::init(&ss.full_k[s], 1);
      FullBar::init(&ss.full_v[s], 1);
      // One arrival per consumer WG that reads the slot (key-split WGs: each slot's tile has one).
      EmptyBar::init(&ss.empty_k[s], Traits::kConsumerWGs / Traits::kKeyWGs);
      EmptyBar::init(&ss.empty_v[s], Traits::kConsumerWGs / Traits::kKeyWGs);
    }
  }

  CUTE_DEVICE static void prefetch_descriptors(Params const& p) {
    cute::prefetch_tma_descriptor(p.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_v.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_o.get_tma_descriptor());
  }

  // Key tiles a query tile visits: [first, end) (masked variants: between the tile's window
  // diagonals, api.h key_tile_range; empty when no row of the tile sees a key).
  // A tile past the end of a short packed sequence has no rows: no key tile either.
  // Split-KV: split r of kSplits walks the r-th of kSplits contiguous shares (maybe none).
  // Stream-K: a piece of a tile walks the key tiles before or after its boundary (WorkTile::split).
  // GQA packing: the tile's queries are those of its packed rows (PackedRows; group = p.head_ratio).
  CUTE_DEVICE static KeyTileRange key_tiles(Params const& p, SeqSpan const& seq, WorkTile const& w) {
    KeyTileRange r;
    if constexpr (Traits::kPackGqa) {
      PackedRows const rows(p.head_ratio, w.m_block, kBlockM);
      if (rows.s_first >= seq.seqlen_q) return {0, 0};
      r = key_tile_range<kBlockN, kCausal>(seq.mask, rows.s_first, rows.queries(kBlockM));
    } else {
      if (w.m_block * kBlockM >= seq.seqlen_q) return {0, 0};
      r = key_tile_range<kBlockN, kCausal>(seq.mask, w.m_block * kBlockM, kBlockM);
    }
    if constexpr (Traits::kSplits > 1) {
      int const share = (r.count() + Traits::kSplits - 1) / Traits::kSplits;
      int const first = r.first + w.split * share;
      r = {first, min(first + share, r.end)};
    }
    if constexpr (Traits::kStreamK) {  // a piece of the tile (stream_k.cuh): its key tiles before or after b
      if (w.split != 0) {
        int const b = r.first + stream_k_boundary(w.split);
        r = stream_k_second(w.split) ? KeyTileRange{b, r.end} : KeyTileRange{r.first, b};
      }
    }
    return r;
  }
  // Consumer WG wg's own key tiles (Traits::kWgKeys): those its 64 rows see, within the CTA's.
  CUTE_DEVICE static KeyTileRange wg_key_tiles(SeqSpan const& seq, WorkTile const& w, int wg, KeyTileRange const& tiles) {
    KeyTileRange const r = key_tile_range<kBlockN, kCausal>(seq.mask, w.m_block * kBlockM + 64 * wg, 64);
    return {max(r.first, tiles.first), min(r.end, tiles.end)};
  }
  CUTE_DEVICE static bool needs_mask(KeyMask const& mask, int m_block, int n) {
    return key_tile_needs_mask<kBlockN, kCausal>(mask, m_block * kBlockM, kBlockM, n);
  }
  CUTE_DEVICE static bool needs_mask(KeyMask const& mask, PackedRows const& rows, int n) {
    return key_tile_needs_mask<kBlockN, kCausal>(mask, rows.s_first, rows.queries(kBlockM), n);
  }
  // The tile's (seqlen, D) views: packed sequences start at their cu_seqlens row of batch 0.
  template <class Tensor4>
  CUTE_DEVICE static auto head_rows(Params const& p, Tensor4 const& m, int head, int batch, int row_start) {
    return domain_offset(make_coord(row_start, _0{}), m(_, _, head, p.seq.packed() ? 0 : batch));
  }

  // ------------------------------------------------------------------ producer (one thread)
  CUTE_DEVICE static void load(Params const& p, SharedStorage& ss, WorkTile const& w, PipeState& k_state,
                               PipeState& v_state, int tile_iter) {
    SeqSpan const seq = seq_span(p.seq, w.batch, w.head);
    KeyTileRange const tiles = key_tiles(p, seq, w);
    Tensor mQ = p.tma_q.get_tma_tensor(p.shape_q);
    Tensor mK = p.tma_k.get_tma_tensor(p.shape_k);
    Tensor mV = p.tma_v.get_tma_tensor(p.shape_k);
    Tensor gQ = local_tile(head_rows(p, mQ, w.head, w.batch, seq.q_start), Shape<BM, HD>{}, make_coord(w.m_block, _0{}));
    // Grouped-query attention: K/V heads are shared (a packing variant's tiles are a K/V head's).
    int const head_kv = Traits::kPackGqa ? w.head : p.head_ratio_div.div(w.head);
    Tensor gK = local_tile(head_rows(p, mK, head_kv, w.batch, seq.k_start), Shape<BN, HD>{},
                           make_coord(_, _0{}));  // (BN, D, n)
    Tensor gV = local_tile(head_rows(p, mV, head_kv, w.batch, seq.k_start), Shape<BN, HDV>{}, make_coord(_, _0{}));
    Tensor sQ = make_tensor(make_smem_ptr(ss.q.data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Traits::SmemLayoutK{});
    Tensor sV = make_tensor(make_smem_ptr(ss.v.data()), typename Traits::SmemLayoutV{});
    auto tma_q_parts = tma_partition(p.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
    Tensor tQgQ = get<0>(tma_q_parts);
    Tensor tQsQ = get<1>(tma_q_parts);
    auto tma_k_parts = tma_partition(p.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
    Tensor tKgK = get<0>(tma_k_parts);
    Tensor tKsK = get<1>(tma_k_parts);
    auto tma_v_parts = tma_partition(p.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
    Tensor tVgV = get<0>(tma_v_parts);
    Tensor tVsV = get<1>(tma_v_parts);

    auto load_k = [&](int n) {
      EmptyBar::wait(&ss.empty_k[k_state.index], k_state.phase ^ 1);
      FullBar::arrive_and_expect_tx(&ss.full_k[k_state.index], Traits::kBytesK);
      copy(p.tma_k.with(ss.full_k[k_state.index], 0, TMA::CacheHintSm90::EVICT_LAST), tKgK(_, n),
           tKsK(_, k_state.index));
      k_state.advance(kStages);
    };
    auto load_v = [&](int n) {
      EmptyBar::wait(&ss.empty_v[v_state.index], v_state.phase ^ 1);
      FullBar::arrive_and_expect_tx(&ss.full_v[v_state.index], Traits::kBytesV);
      copy(p.tma_v.with(ss.full_v[v_state.index], 0, TMA::CacheHintSm90::EVICT_LAST), tVgV(_, n),
           tVsV(_, v_state.index));
      v_state.advance(kStages);
    };

    // Q loads for every tile, even one without keys: the Q barriers' phases count tiles.
    bool const any = tiles.count() > 0;
    int n = tiles.end - 1;
    if (any) load_k(n);
    // Q's buffer is free again once the consumers' last QK^T of the previous tile is done, or,
    // when it doubles as the O staging buffer, once the previous tile's O store has read it.
    if (tile_iter > 0) {
      if constexpr (Traits::kQHoldsOnlyQ) EmptyBar::wait(&ss.bar_q_empty, uint32_t(tile_iter - 1) & 1);
      else EmptyBar::wait(&ss.bar_o, uint32_t(tile_iter - 1) & 1);
    }
    FullBar::arrive_and_expect_tx(&ss.bar_q, Traits::kBytesQ);
    if constexpr (Traits::kPackGqa) {  // the group's rows: one 5-D box per 64 columns (pack_gqa.cuh)
      PackedRows const rows(p.head_ratio, w.m_block, kBlockM);
      CUTE_UNROLL
      for (int j = 0; j < Traits::kHeadDim / 64; ++j) {
        SM90_TMA_LOAD_5D::copy(p.tma_q.get_tma_descriptor(), &ss.bar_q,
                               static_cast<uint64_t>(TMA::CacheHintSm90::EVICT_FIRST), ss.q.data() + j * kBlockM * 64,
                               j * 64, 0, packed_row_coord(seq, rows), w.head, packed_batch_coord(p, w));
      }
    } else {
      copy(p.tma_q.with(ss.bar_q, 0, TMA::CacheHintSm90::EVICT_FIRST), tQgQ, tQsQ);
    }
    // O staged in the V ring: this tile's first V load waits until the previous tile's O store has
    // read it. Every tile waits once, empty ones too: a skipped wait would let the parity run two
    // phases behind and pass early.
    auto wait_o_stored = [&] {
      if constexpr (Traits::kOInV) {
        if (tile_iter > 0) EmptyBar::wait(&ss.bar_o, uint32_t(tile_iter - 1) & 1);
      }
    };
    if (!any) {
      wait_o_stored();
      return;
    }
    // V lags K by one tile: the consumer needs K(n-1) before V(n) when it overlaps.
    if (n > tiles.first) load_k(n - 1);  // K goes ahead of the wait for the O store
    wait_o_stored();
    for (; n > tiles.first; --n) {
      load_v(n);
      if (n - 1 > tiles.first) load_k(n - 2);
    }
    load_v(tiles.first);
  }

  // ------------------------------------------------------------------ consumers
  // The consumer WG index. Multi-WG kernels take it broadcast from lane 0, as
  // cutlass::canonical_warp_group_idx() does: provably warp-uniform, so code that branches on it or
  // indexes the ring with it keeps its descriptor arithmetic in uniform registers, and ptxas wraps
  // no wgmma under a branch in WARPSYNC.COLLECTIVE (the key-split tiles had 16 such pairs, 192 of
  // 3560 instructions). One-WG kernels keep tid / 128 (0): their code stays as it was.
  CUTE_DEVICE static int consumer_wg(int tid) {
    if constexpr (Traits::kConsumerWGs > 1) return __shfl_sync(0xffffffff, tid / 128, 0);
    else return tid / 128;
  }
  // Passing K/V slots unread: a WG that reads none of some key tiles the CTA walks (an idle WG,
  // idle_tile; a _wk1 WG outside its own range, mma) still waits for each such slot to fill and
  // releases it, in the order a computing WG waits for them (K of a tile, V of the one before), and
  // under ping-pong takes their token turns without a GEMM: every WG then takes the same turns, none
  // waits on a slot whose fill needs another WG's later turn, and none walks a slot unwaited. (Walking
  // past slots unwaited while the producer released them, a WG could wait in its next tile on a
  // barrier still short of the fill before the one it wants, whose parity is the same as a finished
  // phase's: its wait passes before the data lands. Seen with _wk1 tiles, which skip many slots;
  // idle WGs did it until 2026-11-29 and were never seen to fail. benchmarks/NOTES.md.)
  // The leader releases a slot only once every warp of its WG has seen the fill (release): a
  // computing WG's wgmma, which all four warps issue, orders this for it; a passing WG has none. A
  // warp still short of its wait when the slot's next fill landed would wait on a parity that
  // phase had already passed and hang (seen: D256 128x80 _wk1 lazy, whose warps leave a softmax
  // with their own skew, hung at every grid cell; benchmarks/NOTES.md, 2026-11-29 16:59-).
  struct SlotPass {
    SharedStorage& ss;
    PipeState& k_state;
    PipeState& v_state;
    int wg;
    bool leader;  // the WG's thread 0 arrives for it
    // Every warp of the WG has passed its wait on this fill (the WG's own named barrier).
    CUTE_DEVICE void release(uint64_t* empty) const {
      cutlass::arch::NamedBarrier::sync(128, uint32_t(NamedBarriers::kEpilogueWg0) + uint32_t(wg));
      if (leader) EmptyBar::arrive(empty);
    }
    CUTE_DEVICE void k(int count) {
      for (int t = 0; t < count; ++t) {
        FullBar::wait(&ss.full_k[k_state.index], k_state.phase);
        release(&ss.empty_k[k_state.index]);
        k_state.advance(kStages);
      }
    }
    CUTE_DEVICE void v(int count) {
      for (int t = 0; t < count; ++t) {
        FullBar::wait(&ss.full_v[v_state.index], v_state.phase);
        release(&ss.empty_v[v_state.index]);
        v_state.advance(kStages);
      }
    }
    CUTE_DEVICE void turns(int count) {
      using Sched = WgScheduler<Traits::kConsumerWGs, Traits::kPingpong>;
      for (int t = 0; t < count; ++t) {
        Sched::acquire(wg);
        Sched::pass(wg);
      }
    }
    // `count` key tiles a computing WG walks from the tile's last: K(t) with V(t - 1) and a turn each.
    CUTE_DEVICE void leading(int count) {
      for (int t = 0; t < count; ++t) {
        k(1);
        v(t > 0 ? 1 : 0);
        turns(1);
      }
    }
    // The whole of a tile of `count` key tiles, by a WG that reads none: the leading ones, Q's buffer
    // released after the last K as a computing WG releases it, then the last V and its PV's turn.
    CUTE_DEVICE void tile(int count) {
      leading(count);
      // Every warp of the WG must have passed its bar_q wait before the next Q may load (mma).
      if constexpr (Traits::kQHoldsOnlyQ) release(&ss.bar_q_empty);
      if (count > 0) {
        v(1);
        turns(1);
      }
    }
  };

  // Is this consumer WG idle for the tile: do its 64 rows all lie past the sequence's end? (The last
  // query tile of a sequence that is no multiple of block_m: 1024 rows in 192-row tiles, 2 of its 3
  // WGs.) An idle WG skips the key loop, so the WGs with rows get the tensor cores to themselves, but
  // takes the Q barriers' turns and passes the tile's K/V slots and ping-pong turns as a reader would
  // (idle_tile, SlotPass). Key-split WGs share their rows: never idle.
  CUTE_DEVICE static bool idle(Params const& p, SeqSpan const& seq, WorkTile const& w, int tid) {
    if constexpr (Traits::kConsumerWGs > 1 && Traits::kKeyWGs == 1) {
      // (With tid / 128 here the 3-WG tiles' spills went from 52 / 72 B to 236-296 B: consumer_wg.)
      return consumer_wg(tid) * 64 >= seq.seqlen_q - w.m_block * kBlockM;
    } else {
      return false;
    }
  }
  CUTE_DEVICE static void idle_tile(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq,
                                    PipeState& k_state, PipeState& v_state, int tile_iter, int tid) {
    int const wg = consumer_wg(tid);
    FullBar::wait(&ss.bar_q, uint32_t(tile_iter) & 1);
    SlotPass{ss, k_state, v_state, wg, tid % 128 == 0}.tile(key_tiles(p, seq, w).count());
  }

  // tid: thread index among the consumer threads. Fills tOrO (unnormalised) and softmax state.
  template <class AccO>
  CUTE_DEVICE static void mma(Params const& p, SharedStorage& ss, WorkTile const& w, SeqSpan const& seq,
                              PipeState& k_state, PipeState& v_state, int tile_iter, int tid, AccO& tOrO,
                              Softmax& softmax) {
    typename Traits::TiledMmaQK tiled_mma_qk;
    typename Traits::TiledMmaPV tiled_mma_pv;
    // Key-split WGs (key_split.cuh) hold the same rows: each is a whole 64-row MMA of its own.
    constexpr int kKeyWGs = Traits::kKeyWGs;
    int const mma_tid = kKeyWGs > 1 ? tid % 128 : tid;
    auto thr_qk = tiled_mma_qk.get_thread_slice(mma_tid);
    auto thr_pv = tiled_mma_pv.get_thread_slice(mma_tid);

    Tensor sQ = make_tensor(make_smem_ptr(ss.q.data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Traits::SmemLayoutK{});
    Tensor sVt = make_tensor(make_smem_ptr(ss.v.data()), typename Traits::SmemLayoutVt{});
    Tensor tSrQ = thr_qk.make_fragment_A(thr_qk.partition_A(sQ));   // (MMA, MMA_M, MMA_K)
    Tensor tSrK = thr_qk.make_fragment_B(thr_qk.partition_B(sK));   // (MMA, MMA_N, MMA_K, stages)
    Tensor tOrV = thr_pv.make_fragment_B(thr_pv.partition_B(sVt));  // (MMA, MMA_N, MMA_K, stages)

    Tensor cS = make_identity_tensor(Shape<BM, BN>{});
    Tensor tScS = rowcol(thr_qk.partition_C(cS));
    Tensor tSrS = partition_fragment_C(tiled_mma_qk, Shape<BM, BN>{});
    using LayoutP = decltype(make_layout(partition_shape_A(tiled_mma_pv, Shape<BM, BN>{})));
    static_assert(decltype(size(tSrS))::value == cosize_v<LayoutP>, "P fragment must alias the S accumulator");

    clear(tOrO);
    float pv_sum[4] = {0.f, 0.f, 0.f, 0.f};  // kSumByPV: rows r, r, r + 8, r + 8 (pv_gemm)
    auto fence_sum = [&] {
      if constexpr (kSumByPV) {
        CUTE_UNROLL
        for (int i = 0; i < 4; ++i) warpgroup_fence_operand(pv_sum[i]);
      }
    };
    KeyTileRange const tiles = key_tiles(p, seq, w);

    int const row0 = w.m_block * kBlockM;
    KeyMask const key_mask = seq.mask;
    float const scale_log2 = p.scale_log2;
    float const softcap_scale = p.softcap_scale;
    bool const wg_leader = (tid % 128) == 0;
    int const wg = consumer_wg(tid);
    using Sched = WgScheduler<Traits::kConsumerWGs, Traits::kPingpong>;

    auto softmax_step = [&](int n, float (&corr)[kRowsPerThread]) {
      Tensor s = rowcol(tSrS);
      if (softcap_scale != 0.f) {  // uniform: tanh before the mask, so masked scores stay -inf
        CUTE_UNROLL
        for (int i = 0; i < size(tSrS); ++i) tSrS(i) = tanh_approx(tSrS(i) * softcap_scale);
      }
      bool masked;
      if constexpr (Traits::kPackGqa) masked = needs_mask(key_mask, PackedRows(p.head_ratio, w.m_block, kBlockM), n);
      else if constexpr (Traits::kWgKeys) masked = key_tile_needs_mask<kBlockN, kCausal>(key_mask, row0 + 64 * wg, 64, n);
      else masked = needs_mask(key_mask, w.m_block, n);
      if (masked) {
        // Each row's visible columns of the tile, one unsigned compare per element (api.h).
        int const col0 = n * kBlockN;
        VisibleColumns visible[kRowsPerThread];
        CUTE_UNROLL
        for (int i = 0; i < kRowsPerThread; ++i) {
          int query = row0 + get<0>(tScS(i, 0));
          if constexpr (Traits::kPackGqa) query = PackedRows(p.head_ratio, w.m_block, kBlockM).query(get<0>(tScS(i, 0)));
          visible[i] = visible_columns<kCausal>(key_mask, query, col0);
        }
        auto mask = [&](int i, int j) { return visible[i].hidden(get<1>(tScS(i, j))); };
        softmax.template step<true>(s, scale_log2, mask, corr);
      } else {
        auto no_mask = [](int, int) { return false; };
        softmax.template step<false>(s, scale_log2, no_mask, corr);
      }
      return masked;
    };
    // kSumByPV: what the PV GEMM of a masked tile's P adds to each row's GEMM sum goes into the
    // softmax's row_round (a quarter a thread: the GEMM's sums are quad-complete, row_round is
    // quad-summed; softmax.cuh: with the exact sum it subtracted there, that tile's whole rounding):
    // the sum before the GEMM is taken out of row_round right away and the sum after it added in
    // `scale`, the scale row_round is in by then (the next tile's correction, which the softmax step
    // in between applied to row_round), so nothing is held across the GEMM.
    auto note_pv_before = [&](bool p_masked) {
      if constexpr (kSumByPV) {
        if (p_masked) {
          CUTE_UNROLL
          for (int i = 0; i < kRowsPerThread; ++i) softmax.row_round[i] -= 0.25f * pv_sum[2 * i];
        }
      }
    };
    auto note_pv_after = [&](bool p_masked, float const (&scale)[kRowsPerThread]) {
      if constexpr (kSumByPV) {
        if (p_masked) {
          CUTE_UNROLL
          for (int i = 0; i < kRowsPerThread; ++i) softmax.row_round[i] += 0.25f * pv_sum[2 * i] * scale[i];
        }
      }
    };
    auto release = [&](uint64_t* bar) {
      if (wg_leader) EmptyBar::arrive(bar);
    };

    FullBar::wait(&ss.bar_q, uint32_t(tile_iter) & 1);
    if (tiles.count() == 0) {  // no key for any row of the tile: O = 0, LSE = +inf (the softmax saw nothing)
      if constexpr (Traits::kQHoldsOnlyQ) {
        // Every warp of the WG must have passed the wait above before the next Q may load. With no
        // wgmma to hold the leader back, a warp still short of that wait would find bar_q's phase
        // moved on twice (the next Q of an empty or out-of-bounds tile lands at once), wait for a
        // third that needs this WG's next release, and the CTA would hang (seen: packed sequences
        // on the 64x96 three-CTA tile; benchmarks/NOTES.md, 2026-11-28 16:51-).
        cutlass::arch::NamedBarrier::sync(128, uint32_t(NamedBarriers::kEpilogueWg0) + uint32_t(wg));
        release(&ss.bar_q_empty);
      }
      return;
    }
    // Per-WG key ranges: the CTA's tiles before this WG's own in the walk (right of its rows) and
    // after them (left of a window) are passed (SlotPass). The last V slot before its own is passed
    // after its first QK^T and softmax, so that its first tile does not wait on it.
    KeyTileRange own = tiles;
    SlotPass pass{ss, k_state, v_state, wg, wg_leader};
    int before = 0;
    if constexpr (Traits::kWgKeys) {
      own = wg_key_tiles(seq, w, wg, tiles);
      if (own.count() == 0) {  // no key for this WG's rows: O = 0, LSE = +inf, as for a tile without keys
        pass.tile(tiles.count());
        return;
      }
      before = tiles.end - own.end;
      pass.leading(before);
    }
    auto pass_after = [&] {
      if constexpr (Traits::kWgKeys) {
        for (int t = own.first - tiles.first; t > 0; --t) {
          pass.k(1);
          pass.v(1);
          pass.turns(1);
        }
      }
    };
    float corr[kRowsPerThread];
    int n = own.end - 1;
    // A key-split WG walks every kKeyWGs-th key tile from the (wg + 1)-th last, which sits in the
    // ring's slot wg (one tile per CTA: the ring starts at slot 0, phase 0).
    auto next_k = [&] {
      if constexpr (kKeyWGs > 1) k_state.advance(kStages, kKeyWGs);
      else k_state.advance(kStages);
    };
    auto next_v = [&] {
      if constexpr (kKeyWGs > 1) v_state.advance(kStages, kKeyWGs);
      else v_state.advance(kStages);
    };
    if constexpr (kKeyWGs > 1) {
      n -= wg;
      if (n < tiles.first) return;  // fewer key tiles than WGs: an empty partial (combined as such)
      k_state.advance(kStages, wg);
      v_state.advance(kStages, wg);
    }

    if constexpr (Traits::kIntraWGOverlap) {
      // Prologue: S(n_last) and its softmax alone.
      FullBar::wait(&ss.full_k[k_state.index], k_state.phase);
      Sched::acquire(wg);
      wg_gemm<true, -1>(tiled_mma_qk, tSrQ, tSrK(_, _, _, k_state.index), tSrS);
      Sched::pass(wg);
      warpgroup_wait<0>();
      warpgroup_fence_operand(tSrS);
      release(&ss.empty_k[k_state.index]);
      next_k();
      bool p_masked = softmax_step(n, corr);  // the P the next PV GEMM reads
      note_pv_before(p_masked);
      Tensor rP = convert_fragment<Element>(tSrS);
      Tensor tOrP = make_tensor(rP.data(), LayoutP{});
      if constexpr (Traits::kWgKeys) pass.v(before > 0 ? 1 : 0);
      CUTE_NO_UNROLL
      for (n -= kKeyWGs; n >= own.first; n -= kKeyWGs) {
        FullBar::wait(&ss.full_k[k_state.index], k_state.phase);
        FullBar::wait(&ss.full_v[v_state.index], v_state.phase);
        Sched::acquire(wg);
        wg_gemm<true, -1>(tiled_mma_qk, tSrQ, tSrK(_, _, _, k_state.index), tSrS);
        pv_gemm(tOrP, tOrV(_, _, _, v_state.index), tOrO, pv_sum);
        Sched::pass(wg);
        warpgroup_wait<1>();  // S ready
        warpgroup_fence_operand(tSrS);
        release(&ss.empty_k[k_state.index]);
        next_k();
        bool const masked = softmax_step(n, corr);  // overlaps the PV wgmma
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        fence_sum();
        release(&ss.empty_v[v_state.index]);
        next_v();
        note_pv_after(p_masked, corr);  // in this tile's scale, as row_round now is
        p_masked = masked;
        Tensor o = rowcol(tOrO);
        Softmax::rescale(o, corr);
        if constexpr (kSumByPV) {
          CUTE_UNROLL
          for (int i = 0; i < 4; ++i) pv_sum[i] *= corr[i / 2];
        }
        note_pv_before(p_masked);  // (here, where no wgmma is in flight: ptxas spilled it between two)
        Tensor rPn = convert_fragment<Element>(tSrS);
        CUTE_UNROLL
        for (int i = 0; i < size(rP); ++i) rP(i) = rPn(i);
      }
      if constexpr (Traits::kQHoldsOnlyQ) release(&ss.bar_q_empty);  // every QK^T of this tile is done
      FullBar::wait(&ss.full_v[v_state.index], v_state.phase);
      Sched::acquire(wg);
      pv_gemm(tOrP, tOrV(_, _, _, v_state.index), tOrO, pv_sum);
      Sched::pass(wg);
      warpgroup_wait<0>();
      warpgroup_fence_operand(tOrO);
      fence_sum();
      release(&ss.empty_v[v_state.index]);
      next_v();
      if constexpr (kSumByPV) {
        float one[kRowsPerThread];  // (no rescale after the last tile)
        CUTE_UNROLL
        for (int i = 0; i < kRowsPerThread; ++i) one[i] = 1.f;
        note_pv_after(p_masked, one);
        CUTE_UNROLL
        for (int i = 0; i < kRowsPerThread; ++i) softmax.row_sum[i] = pv_sum[2 * i];
      }
      pass_after();
    } else {
      if constexpr (Traits::kWgKeys) pass.v(before > 0 ? 1 : 0);
      CUTE_NO_UNROLL
      for (; n >= own.first; n -= kKeyWGs) {
        FullBar::wait(&ss.full_k[k_state.index], k_state.phase);
        wg_gemm<true, 0>(tiled_mma_qk, tSrQ, tSrK(_, _, _, k_state.index), tSrS);
        release(&ss.empty_k[k_state.index]);
        next_k();
        softmax_step(n, corr);
        Tensor o = rowcol(tOrO);
        Softmax::rescale(o, corr);
        Tensor rP = convert_fragment<Element>(tSrS);
        Tensor tOrP = make_tensor(rP.data(), LayoutP{});
        FullBar::wait(&ss.full_v[v_state.index], v_state.phase);
        wg_gemm<false, 0>(tiled_mma_pv, tOrP, tOrV(_, _, _, v_state.index), tOrO);
        release(&ss.empty_v[v_state.index]);
        next_v();
      }
      if constexpr (Traits::kQHoldsOnlyQ) release(&ss.bar_q_empty);
      pass_after();
    }
  }
};

}  // namespace flashcore::sm90
