// The SM80 attention forward kernel skeleton, templated on its parts: one thread block per work
// tile of the TileScheduler; the Mainloop runs over the key tiles (both GEMMs, the Softmax) and
// issues the Q tile copy (QTile) where its schedule wants it; the Epilogue writes O and the LSE.
// The families differ in the Mainloop only (mainloop_sync.cuh: "mma", mainloop_pipelined.cuh:
// "pipelined"); their .cu files instantiate Kernel and wrap run_block in a __global__ function.
#pragma once

#include <cuda_runtime.h>

#include "flashcore/api.h"
#include "flashcore/sm80/common.cuh"
#include "flashcore/sm80/epilogue.cuh"
#include "flashcore/sm80/softmax.cuh"
#include "flashcore/sm80/tile_scheduler.cuh"

namespace flashcore::sm80 {

// The block's Q tile. The mainloop partitions its copy after its own setup, issues it with (or
// before) its first K/V loads, then calls negate_if_needed(): where these happen is part of its
// schedule (and of its SASS).
template <class Mainloop, class Block, class GmemQ>
struct QTile {
  using Config = typename Mainloop::Config;
  using SmemLayoutQ = typename Mainloop::SmemLayoutQ;
  FwdParams const& p;
  Block const& blk;
  GmemQ const& gQ;
  typename Mainloop::SharedStorage& smem;
  int tid;

  // This thread's part of the copy, with the mainloop's copy (synchronous or cp.async); rows past
  // the end of the sequence are zero-filled. Partitioned when called, issued when the returned
  // callable runs: the mainloop picks both points.
  CUTE_DEVICE auto partitioned_load() const {
    typename Mainloop::GmemCopy gmem_copy;
    auto gthr = gmem_copy.get_thread_slice(tid);
    auto tQgQ = gthr.partition_S(gQ);
    auto tQsQ = gthr.partition_D(make_tensor(make_smem_ptr(smem.q.data()), SmemLayoutQ{}));
    auto tQcQ = gthr.partition_S(make_identity_tensor(typename Config::ShapeQ{}));
    int const rows = blk.rows;
    return [=] { copy_rows(gmem_copy, tQgQ, tQsQ, tQcQ, rows); };
  }

  // Negative scale: run with -Q and |scale| (see negate_smem). The mainloop's next barrier
  // publishes the result.
  CUTE_DEVICE void negate_if_needed() const {
    if (p.negate_q) {
      Mainloop::wait_q();
      __syncthreads();  // every thread's part of the Q tile has landed
      negate_smem<Config::kThreads, cosize_v<SmemLayoutQ>>(smem.q.data());
    }
  }
};

template <class Mainloop_, class Softmax_, class Epilogue_, class TileScheduler_>
struct Kernel {
  using Mainloop = Mainloop_;
  using Softmax = Softmax_;
  using Epilogue = Epilogue_;
  using TileScheduler = TileScheduler_;
  using Config = typename Mainloop::Config;
  using SharedStorage = typename Mainloop::SharedStorage;
  static constexpr int kThreads = Config::kThreads;
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));

  // One thread block's work: the body of the variant's __global__ function.
  CUTE_DEVICE static void run_block(FwdParams const& p) {
    extern __shared__ __align__(128) char smem_raw[];
    auto& smem = *reinterpret_cast<SharedStorage*>(smem_raw);
    int const tid = threadIdx.x;
    auto const blk = TileScheduler::block(p);
    auto const g = global_tiles<Config>(p, blk);

    // The mainloop zeroes acc_o and initialises softmax with its first tile.
    auto acc_o = partition_fragment_C(typename Config::TiledMma{}, typename Config::ShapeQ{});
    Softmax softmax;
    QTile<Mainloop, decltype(blk), decltype(g.q)> const q{p, blk, g.q, smem, tid};
    Mainloop::run(p, blk, smem, tid, g.k, g.v, q, acc_o, softmax);

    Epilogue::normalize_and_store_lse(p, blk, acc_o, softmax, tid);
    if constexpr (!Mainloop::kSmemQFreeAfterLoop) {
      __syncthreads();  // every warp is done reading sQ before it becomes sO
    }
    auto sO = make_tensor(make_smem_ptr(smem.q.data()), typename Mainloop::SmemLayoutQ{});  // O takes Q's place
    Epilogue::store_o(acc_o, sO, g.o, blk.rows, tid);
  }
};

// Launch `kernel`, the variant's __global__ function around Kernel::run_block, on every chunk of
// the tile scheduler's grid, with more than 48 KB of dynamic shared memory opted in where the tiles
// need it. The __global__ function is the variant's own rather than a template here: NVVM places
// parameter loads differently in a template kernel, which changed the SASS of the same body.
template <class Kernel>
cudaError_t run_fwd(void (*kernel)(FwdParams), FwdParams const& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.heads <= 0 || p.seqlen_q <= 0) return cudaSuccess;  // empty output
  return Kernel::TileScheduler::launch(p, [&](FwdParams const& chunk, dim3 grid) {
    if (Kernel::kSmemBytes > 48 * 1024) {
      cudaError_t err = set_max_dynamic_smem_once<Kernel>(kernel, Kernel::kSmemBytes);
      if (err != cudaSuccess) return err;
    }
    kernel<<<grid, dim3(Kernel::kThreads), Kernel::kSmemBytes, stream>>>(chunk);
    return cudaGetLastError();
  });
}

}  // namespace flashcore::sm80
