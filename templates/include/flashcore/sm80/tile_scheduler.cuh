// Which (batch, head, query tile) a thread block owns, and the grid that covers them.
#pragma once

#include <cuda_runtime.h>

#include "flashcore/api.h"
#include "flashcore/sm80/common.cuh"

namespace flashcore::sm80 {

// Geometry of one thread block's work tile: its place in the problem and how many key tiles it visits.
template <int kBlockM, int kBlockN, bool kCausal>
struct BlockGeometry {
  int batch, head, m_block;
  int row0;       // first query row of the tile
  int rows;       // valid query rows in the tile (<= kBlockM)
  int n_first;    // first key tile to visit (a left window skips the tiles before it)
  int n_blocks;   // one past the last key tile to visit (masked: up to the diagonal); no key
                  // tile when n_blocks <= n_first (no row of the tile sees a key)
  int head_kv;    // K/V head of this query head (grouped-query attention)

  SeqSpan seq;    // this sequence's rows, lengths, LSE offset and mask (packed: from cu_seqlens)

  CUTE_DEVICE BlockGeometry(FwdParams const& p, int m_block_, int head_, int batch_) {
    m_block = m_block_;
    head = head_;
    batch = batch_;
    head_kv = kv_head(p, head);
    seq = seq_span(seq_layout(p), batch, head);
    row0 = m_block * kBlockM;
    rows = min(kBlockM, seq.seqlen_q - row0);  // <= 0: a tile past a short packed sequence
    KeyTileRange const tiles =
        rows > 0 ? key_tile_range<kBlockN, kCausal>(seq.mask, row0, kBlockM) : KeyTileRange{0, 0};
    n_first = tiles.first;
    n_blocks = tiles.end;
  }

  // Does key tile n need masking (sequence end, causal diagonal, left window edge)?
  CUTE_DEVICE bool needs_mask(int n) const { return key_tile_needs_mask<kBlockN, kCausal>(seq.mask, row0, kBlockM, n); }
};

// One block per work tile on the grid (query tiles, heads, batch). Launched through
// launch_chunked() (api.h), so that any batch and head count works: chunks of at most 65535 of
// each, pointers advanced per chunk, while the kernel keeps reading blockIdx.y / .z directly.
template <class Config>
struct BlockIdxTileScheduler {
  using Geometry = BlockGeometry<Config::kBlockM, Config::kBlockN, Config::kCausal>;

  CUTE_DEVICE static Geometry block(FwdParams const& p) {
    // Causal tiles near the end of the sequence see more keys: launch them first.
    int const m_block = Config::kCausal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
    return Geometry(p, m_block, blockIdx.y, blockIdx.z);
  }

  // launch(chunk_params, grid) launches one chunk.
  template <class Launch>
  static cudaError_t launch(FwdParams const& p, Launch&& launch) {
    int const m_tiles = (p.seqlen_q + Config::kBlockM - 1) / Config::kBlockM;
    return launch_chunked(p, m_tiles, int(sizeof(typename Config::Element)), launch);
  }
};

}  // namespace flashcore::sm80
