// The ABI between generated kernel translation units and the torch binding.
// Kept free of torch (and of CuTe) so kernel sources compile anywhere, fast.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace flashcore {

// One attention forward call. Tensors are (batch, heads, seqlen, head_dim) with the last
// dimension contiguous; strides are in elements. lse is (batch, heads, seqlen_q) fp32, contiguous.
// The binding guarantees: batch, heads >= 1, batch * heads <= INT32_MAX, 1 <= seqlen_q, seqlen_k
// <= kMaxSeqlen (so int arithmetic on rows and tile ends cannot overflow), scale finite.
struct FwdParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t o_batch_stride, o_head_stride, o_row_stride;
  int batch, heads, seqlen_q, seqlen_k;
  float scale;       // softmax scale applied to Q.K^T, any finite value (negative and zero too)
  float scale_log2;  // scale * log2(e), signed: kernels that mask in the scaled domain use it as is
  // The same scale with its sign folded into Q, for kernels that take the row max of *raw*
  // scores (masked = -inf) and scale afterwards: they negate their Q tile once per block when
  // negate_q is set, then run a softmax whose scale is positive. Never below FLT_MIN: a zero or
  // subnormal scale becomes the smallest normal float, which gives exp2 arguments below 1e-25,
  // i.e. exactly what scale 0 gives in fp32 (every visible key weighs 1).
  float scale_log2_abs;
  int negate_q;  // 1 when scale < 0
  // Grouped-query attention: k and v have heads_k heads (heads % heads_k == 0); query head h reads
  // K/V head h / (heads / heads_k). k/v batch and head strides step over K/V's own heads.
  int heads_k;
  // Masked ("causal") variants: query row r sees key c iff r + left_offset <= c <= r + causal_offset.
  // Causal: causal_offset 0 = top-left alignment (torch's is_causal), seqlen_k - seqlen_q =
  // bottom-right (FlashAttention's, KV-cache decoding). A sliding window (left, right) moves the
  // two diagonals: causal_offset = align + right, left_offset = align - left; no left window is
  // left_offset = -seqlen_q (below every row's first key). The binding clamps both to
  // [-seqlen_q, seqlen_k], so r + offset never overflows. Rows that see no key get O = 0 and
  // LSE = +inf. Ignored by non-causal variants (which mask nothing but the sequence end).
  int causal_offset;
  int left_offset;
  // Logit softcap (Gemma-2): 0 = off; else each score s becomes tanh(s * softcap_scale) (that is
  // tanh(scale * s / cap)) before masking and softmax, and the binding sets scale, scale_log2 and
  // scale_log2_abs to the cap's (cap, cap * log2 e), negate_q to 0: softmax(cap * tanh(...)).
  float softcap_scale;
  // The call's head dim (q/k/v/o's last extent): a multiple of 8, at most the variant's. Smaller
  // calls run on the next larger variant, whose kernels zero-fill the missing columns on load and
  // never store them (no copy of the inputs). 0 = the variant's own.
  int head_dim;
  // V's and O's head dim when it differs from Q/K's (a padding variant computes both padded to
  // its own: zero V columns past it give zero O columns, never stored). 0 = head_dim.
  int head_dim_v;
  // Packed variable-length sequences (attention_varlen): nullptr = one length for all. Else
  // sequence b's query rows are [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of the packed tensors (their
  // batch strides are 0, row strides step over tokens) and likewise for keys; seqlen_q and
  // seqlen_k are the longest lengths (the grid); total_q the packed query rows (lse is
  // (heads, total_q)). causal_offset / left_offset are then relative to each sequence's
  // alignment: + seqlen_k_b - seqlen_q_b when bottom_right is set (SeqSpan below).
  const int* cu_seqlens_q;
  const int* cu_seqlens_k;
  int total_q, total_k;
  int bottom_right;
  int num_sms;      // SM count of the device (persistent grids); the binding caches it per device
  void* workspace;  // device scratch of the variant's workspace_bytes() (uninitialised), or nullptr
  // Programmatic dependent launch (sm90 kernels; others ignore it): 1 = launch so that this kernel's
  // prologue may run while the previous kernel on the stream finishes (every thread waits for that
  // kernel's results before it touches global memory), and let the next kernel do the same.
  int programmatic_launch;
  // 1 = the caller discards lse (attention() without return_lse, the SDPA drop-in): a kernel may
  // then write an lse that is not exact (the binding still allocates and returns it). 0 = exact.
  int lse_unused;
};

// Longest sequence the kernels index with 32-bit ints (with headroom for tile ends and sums).
constexpr int64_t kMaxSeqlen = int64_t(1) << 30;

// gridDim.y and gridDim.z are limited to 65535.
constexpr int kMaxGridYZ = 65535;

// Launch a one-block-per-(query tile, head, batch) kernel, grid (m_tiles, heads, batch), for any
// batch and head count: above 65535 the problem is split into chunks of at most 65535 batches x
// 65535 heads, one launch each, with q/k/v/o/lse advanced to the chunk's first (batch, head).
// `launch(params, grid)` launches one chunk. A chunk's params keep the full `heads` (the kernels'
// LSE row of (batch, head) is batch * heads + head, relative to the advanced lse pointer) and
// its own `batch`. The kernels stay as simple as one launch (blockIdx.y = head, .z = batch): a
// grid folded inside the kernel cost 16 registers in the pipelined mainloop (an integer division
// whose results stay live), this costs nothing below the limit.
inline const void* advance(const void* ptr, int64_t elements, int element_bytes) {
  return static_cast<const char*>(ptr) + elements * element_bytes;
}
inline void* advance(void* ptr, int64_t elements, int element_bytes) {
  return static_cast<char*>(ptr) + elements * element_bytes;
}

template <class Launch>
inline cudaError_t launch_chunked(FwdParams const& p, int m_tiles, int element_bytes, Launch&& launch) {
  // Grouped-query attention: a chunk starts at a multiple of the group size, so that the chunk's
  // K/V head of local query head y is y / group, relative to its advanced k/v pointers.
  int const group = p.heads_k > 0 ? p.heads / p.heads_k : 1;
  int const max_heads = kMaxGridYZ - kMaxGridYZ % group;
  if (max_heads == 0) return cudaErrorInvalidValue;  // a group wider than one grid (the binding refuses it)
  for (int b0 = 0; b0 < p.batch; b0 += kMaxGridYZ) {
    int const nb = p.batch - b0 < kMaxGridYZ ? p.batch - b0 : kMaxGridYZ;
    for (int h0 = 0; h0 < p.heads; h0 += max_heads) {
      int const nh = p.heads - h0 < max_heads ? p.heads - h0 : max_heads;
      int const hk0 = h0 / group;
      FwdParams c = p;
      c.q = advance(p.q, b0 * p.q_batch_stride + h0 * p.q_head_stride, element_bytes);
      c.k = advance(p.k, b0 * p.k_batch_stride + hk0 * p.k_head_stride, element_bytes);
      c.v = advance(p.v, b0 * p.v_batch_stride + hk0 * p.v_head_stride, element_bytes);
      c.o = advance(p.o, b0 * p.o_batch_stride + h0 * p.o_head_stride, element_bytes);
      // Packed sequences: batch strides are 0 and rows come from cu_seqlens (advanced to the
      // chunk's first sequence); the LSE is (heads, total_q).
      c.lse = p.cu_seqlens_q != nullptr ? p.lse + int64_t(h0) * p.total_q
                                        : p.lse + (int64_t(b0) * p.heads + h0) * p.seqlen_q;
      if (p.cu_seqlens_q != nullptr) {
        c.cu_seqlens_q = p.cu_seqlens_q + b0;
        c.cu_seqlens_k = p.cu_seqlens_k + b0;
      }
      c.batch = nb;
      cudaError_t const err = launch(c, dim3(unsigned(m_tiles), unsigned(nh), unsigned(nb)));
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// K/V head read by query head `head` (relative to a launch_chunked chunk or absolute).
inline __host__ __device__ int kv_head(FwdParams const& p, int head) {
  return p.heads_k > 0 ? head / (p.heads / p.heads_k) : head;
}

// What a masked variant's tile loop needs of FwdParams (device code copies it into its own
// params): row r sees key c iff c < seqlen_k and r + left_offset <= c <= r + causal_offset.
struct KeyMask {
  int seqlen_k, causal_offset, left_offset;
};

// Key tiles [first, end) of kBlockN keys that query rows [row0, row0 + rows) can see (non-masked
// variants: every tile up to seqlen_k). end <= first: no row sees a key.
struct KeyTileRange {
  int first, end;
  __host__ __device__ int count() const { return end > first ? end - first : 0; }
};
template <int kBlockN, bool kMasked>
inline __host__ __device__ KeyTileRange key_tile_range(KeyMask const& m, int row0, int rows) {
  int key_end = m.seqlen_k;  // one past the last visible key of the last row
  int key_begin = 0;         // the first visible key of the first row
  if (kMasked) {
    int const last_row_end = row0 + rows + m.causal_offset;
    key_end = last_row_end < key_end ? last_row_end : key_end;
    int const first = row0 + m.left_offset;
    key_begin = first > 0 ? first : 0;
  }
  if (key_end <= key_begin) return {0, 0};
  return {key_begin / kBlockN, (key_end + kBlockN - 1) / kBlockN};
}

// Does key tile n need the per-element mask for rows [row0, row0 + rows): the sequence end, the
// causal (right) diagonal or the left window edge crosses it.
template <int kBlockN, bool kMasked>
inline __host__ __device__ bool key_tile_needs_mask(KeyMask const& m, int row0, int rows, int n) {
  int const col0 = n * kBlockN, col_last = col0 + kBlockN - 1;
  if (col_last >= m.seqlen_k) return true;
  if (!kMasked) return false;
  return col_last > row0 + m.causal_offset || col0 < row0 + rows - 1 + m.left_offset;
}

// The per-element rule: may row `row` see key `col`?
template <bool kMasked>
inline __host__ __device__ bool key_visible(KeyMask const& m, int row, int col) {
  return col < m.seqlen_k && (!kMasked || (col <= row + m.causal_offset && col >= row + m.left_offset));
}

// The same rule for one row and a tile of keys from col0, as one unsigned compare per key: key
// col0 + c is visible iff uint32_t(c - lo) <= width. A row that sees none gets lo = -1, width 0,
// which no c >= 0 passes.
struct VisibleColumns {
  int lo;
  uint32_t width;
  __host__ __device__ bool hidden(int c) const { return uint32_t(c - lo) > width; }
};
template <bool kMasked>
inline __host__ __device__ VisibleColumns visible_columns(KeyMask const& m, int row, int col0) {
  int const right = row + m.causal_offset, left = row + m.left_offset;  // no std::min: g++ sees this header too
  int const last = kMasked && right < m.seqlen_k - 1 ? right : m.seqlen_k - 1;
  int const first = kMasked && left > 0 ? left : 0;
  bool const none = last < first;
  return {none ? -1 : first - col0, none ? 0u : uint32_t(last - first)};
}

// One sequence's place in the inputs: its first query and key rows (relative to the batch's base
// pointer; 0 unless packed), its lengths, its LSE offset and its mask.
struct SeqSpan {
  int q_start, k_start;
  int seqlen_q;
  int64_t lse_offset;  // of (this sequence, head) row 0 in FwdParams::lse
  KeyMask mask;
};

// What seq_span needs of FwdParams (the sm90 kernels keep a copy in their own params).
struct SeqLayout {
  const int* cu_seqlens_q;
  const int* cu_seqlens_k;
  int heads, seqlen_q, seqlen_k, total_q, total_k;
  int causal_offset, left_offset, bottom_right;
  __host__ __device__ bool packed() const { return cu_seqlens_q != nullptr; }
};
inline __host__ __device__ SeqLayout seq_layout(FwdParams const& p) {
  return {p.cu_seqlens_q, p.cu_seqlens_k, p.heads, p.seqlen_q, p.seqlen_k, p.total_q, p.total_k,
          p.causal_offset, p.left_offset, p.bottom_right};
}

inline __host__ __device__ int clamp_int(int x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : x); }

inline __host__ __device__ SeqSpan seq_span(SeqLayout const& l, int batch, int head) {
  if (l.cu_seqlens_q == nullptr) {
    return {0, 0, l.seqlen_q, (int64_t(batch) * l.heads + head) * l.seqlen_q,
            {l.seqlen_k, l.causal_offset, l.left_offset}};
  }
  // Clamped to the packed rows: offsets the caller did not validate may give wrong rows, but
  // never a read or write outside the tensors.
  int const q0 = clamp_int(l.cu_seqlens_q[batch], 0, l.total_q), k0 = clamp_int(l.cu_seqlens_k[batch], 0, l.total_k);
  int const sq = clamp_int(l.cu_seqlens_q[batch + 1], q0, l.total_q) - q0;
  int const sk = clamp_int(l.cu_seqlens_k[batch + 1], k0, l.total_k) - k0;
  int const align = l.bottom_right ? sk - sq : 0;  // the binding keeps the offsets within +-2^30
  return {q0, k0, sq, int64_t(head) * l.total_q + q0,
          {sk, clamp_int(l.causal_offset + align, -sq, sk), clamp_int(l.left_offset + align, -sq, sk)}};
}

#if defined(__CUDACC__)
// Opts `kernel` in to `bytes` of dynamic shared memory once per device: the attribute is per
// device, and setting it on every call cost a driver call per launch (launch-bound calls count
// microseconds). Devices past the 64 a mask holds are set on every call. `Tag` must name the
// kernel uniquely (its variant's kernel type): the flag is a static of this inline function, one
// per instantiation across every translation unit, so a tag two kernels share would let the second
// skip its own attribute (the kernel pointer's type alone, void(*)(FwdParams), is such a tag).
template <class Tag, class KernelPtr>
inline cudaError_t set_max_dynamic_smem_once(KernelPtr kernel, int bytes) {
  static std::atomic<uint64_t> done{0};  // bit d: set on device d
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  uint64_t const bit = device >= 0 && device < 64 ? uint64_t(1) << device : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e == cudaSuccess) done.fetch_or(bit, std::memory_order_release);
  return e;
}

// tanh for the logit softcap: the SFU's tanh.approx.f32 (max relative error ~2^-11, below the
// fp16/bf16 rounding of P), one instruction instead of tanhf's ~20.
__device__ __forceinline__ float tanh_approx(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

// can_implement of kernels that move 16-byte vectors through global memory (cp.async, 128-bit
// loads and stores): nullptr when q, k, v and o start 16-byte aligned and the stride of every
// dimension with more than one index is a multiple of 16 bytes (a lone index never applies its
// stride), else why not.
inline const char* vector16_alignment_error(FwdParams const& p, int element_bytes) {
  auto base_ok = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  auto stride_ok = [element_bytes](int64_t stride, int extent) {
    return extent <= 1 || (stride * element_bytes) % 16 == 0;
  };
  int const heads_k = p.heads_k > 0 ? p.heads_k : p.heads;
  bool const ok = base_ok(p.q) && base_ok(p.k) && base_ok(p.v) && base_ok(p.o) &&
                  stride_ok(p.q_batch_stride, p.batch) && stride_ok(p.q_head_stride, p.heads) &&
                  stride_ok(p.q_row_stride, p.seqlen_q) && stride_ok(p.k_batch_stride, p.batch) &&
                  stride_ok(p.k_head_stride, heads_k) && stride_ok(p.k_row_stride, p.seqlen_k) &&
                  stride_ok(p.v_batch_stride, p.batch) && stride_ok(p.v_head_stride, heads_k) &&
                  stride_ok(p.v_row_stride, p.seqlen_k) && stride_ok(p.o_batch_stride, p.batch) &&
                  stride_ok(p.o_head_stride, p.heads) && stride_ok(p.o_row_stride, p.seqlen_q);
  return ok ? nullptr
            : "the SM80 kernels copy 16-byte vectors: q, k, v and out need 16-byte aligned data and strides that are "
              "multiples of 16 bytes";
}

using FwdFn = cudaError_t (*)(const FwdParams&, cudaStream_t);

// What a variant computes; the binding checks a call against it before launching.
struct VariantInfo {
  const char* name;         // the config name: fc_<family>_<dtype>_d<D>_<mask>_<tiles>
  const char* source_hash;  // hash of the generated source and the headers it includes
  int dtype;                // 0 = fp16, 1 = bf16 (codegen.config.DTYPES order)
  int head_dim;
  bool causal;         // a masked variant: causal diagonal and sliding window (FwdParams)
  FwdFn run;
  const char* arch;  // the compile target, e.g. "sm_90a" (an "a" target runs on exactly that capability)
  int min_cc;        // compute capability the code needs, major * 10 + minor: 90, 80
  // Bytes of device scratch a call needs (FwdParams::workspace), uninitialised: the variant's run
  // zeroes what must start at zero. nullptr = none.
  size_t (*workspace_bytes)(const FwdParams&);
  // nullptr when the variant can run the call, else a static string saying why not (e.g. TMA
  // alignment); the binding raises it before launching. A nullptr function = runs every call.
  const char* (*can_implement)(const FwdParams&);
  // Runs calls with a smaller head dim, any multiple of 8 (FwdParams::head_dim, and V's own
  // FwdParams::head_dim_v), by zero-filling the missing columns in the kernel; false: exactly
  // head_dim for q, k and v.
  bool pads_head_dim;
};

// Defined in the binding; each generated translation unit calls it from a static initializer.
void register_variant(const VariantInfo& info);

}  // namespace flashcore
