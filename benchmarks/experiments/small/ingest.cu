// How fast does one SM land K/V bytes from L2 (or HBM) in shared memory, by load method?
//
// The 2026-11-26 (21:48-) session measured a short call's key loop at ~1,570 cycles per 128-key
// D64 tile (32 KB of K and V) on one CTA, the same with 1-4 consumer warpgroups and 2-4 ring
// slots, and concluded that the rate at which TMA lands a CTA's tiles bounds it. This program
// measures that rate with no attention work at all, so that the conclusion can be checked:
//   once   : all of N bytes requested at once, one wait (latency + bytes / bandwidth)
//            methods: tma (2D tensor boxes of 64 x box_rows 16-bit elements, 128B swizzle, as the
//            kernels' K/V), bulk (1D cp.async.bulk chunks), cpasync (16 B per thread, LDGSTS),
//            ldg (16 B loads into registers, stored to shared memory)
//   ring   : the kernels' pattern: a producer thread loads K and V boxes (64 x 128 each) into a
//            ring of `stages` slots; one warpgroup waits for each slot, optionally spins
//            `work` cycles (standing in for QK^T/softmax/PV), and frees it. Cycles per tile.
// Every CTA reads its own region; `cold` walks fresh addresses of a 1 GB buffer (after a
// 256 MB scrub) so that reads come from HBM. Prints one line per case; medians over the reps.
//   nvcc -O3 -std=c++17 -arch=sm_90a -o ingest ingest.cu && ./ingest
#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)

enum Method { kTma = 0, kBulk = 1, kCpAsync = 2, kLdg = 3 };
static const char* kMethodName[] = {"tma", "bulk", "cpasync", "ldg"};

constexpr int kMaxReps = 32;
constexpr int kRowBytes = 128;  // 64 16-bit elements: one swizzle-128B row, as a D64 K/V row

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes));
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)));
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra W;\n}\n" ::"r"(smem_u32(bar)), "r"(parity));
}
__device__ __forceinline__ void tma_2d(void* dst, const CUtensorMap* map, int col, int row, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(smem_u32(dst)), "l"(map), "r"(col), "r"(row), "r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void bulk_1d(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
      ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ uint64_t cycle_now() { return clock64(); }

// One rep of "once": request `bytes` (from row `row0` of the buffer) and wait until all landed.
__global__ void __launch_bounds__(256) once_kernel(const __grid_constant__ CUtensorMap map, const char* buf,
                                                   int method, int bytes, int chunk, int box_rows,
                                                   int cold, int reps, long long* cycles) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bar;
  const int tid = threadIdx.x;
  if (tid == 0) {
    mbar_init(&bar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  const int rows = bytes / kRowBytes;
  for (int rep = 0; rep < reps; ++rep) {
    // Each CTA reads its own rows; cold: fresh rows each rep (CTA b, rep r: block r * grid + b).
    const long long row0 = (static_cast<long long>(cold ? rep : 0) * gridDim.x + blockIdx.x) * rows;
    __syncthreads();
    const uint64_t t0 = cycle_now();
    if (method == kTma || method == kBulk) {
      if (tid == 0) {
        mbar_expect_tx(&bar, bytes);
        if (method == kTma) {
          for (int r = 0; r < rows; r += box_rows) tma_2d(smem + r * kRowBytes, &map, 0, int(row0 + r), &bar);
        } else {
          for (int o = 0; o < bytes; o += chunk) bulk_1d(smem + o, buf + row0 * kRowBytes + o, chunk, &bar);
        }
      }
      mbar_wait(&bar, rep & 1);
    } else if (method == kCpAsync) {
      const char* src = buf + row0 * kRowBytes;
      for (int o = tid * 16; o < bytes; o += blockDim.x * 16) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_u32(smem + o)), "l"(src + o));
      }
      asm volatile("cp.async.commit_group;\ncp.async.wait_all;" ::: "memory");
      __syncthreads();
    } else {
      const int4* src = reinterpret_cast<const int4*>(buf + row0 * kRowBytes);
      int4* dst = reinterpret_cast<int4*>(smem);
      constexpr int kUnroll = 8;
      for (int i = tid; i < bytes / 16; i += blockDim.x * kUnroll) {
        int4 v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int j = i + u * blockDim.x;
          if (j < bytes / 16) asm volatile("ld.global.cg.v4.s32 {%0,%1,%2,%3}, [%4];"
                                           : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w) : "l"(src + j));
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int j = i + u * blockDim.x;
          if (j < bytes / 16) dst[j] = v[u];
        }
      }
      __syncthreads();
    }
    const uint64_t t1 = cycle_now();
    if (tid == 0) cycles[blockIdx.x * kMaxReps + rep] = static_cast<long long>(t1 - t0);
  }
}

// The kernels' pattern: warp 4 (one lane) produces K and V boxes of 64 x 128 into `stages` slots;
// warps 0-3 consume each slot after `work` cycles of spinning and free it (one arrive per warp).
__global__ void __launch_bounds__(160) ring_kernel(const __grid_constant__ CUtensorMap map, int tiles, int stages,
                                                   int work, long long rows_per_cta, long long* cycles) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t full[8], empty[8];
  constexpr int kTileBytes = 128 * kRowBytes;  // one 128-row box of K (or V)
  const int tid = threadIdx.x, warp = tid / 32;
  if (tid == 0) {
    for (int s = 0; s < stages; ++s) { mbar_init(&full[s], 1); mbar_init(&empty[s], 4); }
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  const long long row0 = blockIdx.x * rows_per_cta;
  const uint64_t t0 = cycle_now();
  if (warp == 4) {
    if (tid == 128) {
      for (int t = 0; t < tiles; ++t) {
        const int s = t % stages;
        if (t >= stages) mbar_wait(&empty[s], ((t / stages) - 1) & 1);
        mbar_expect_tx(&full[s], 2 * kTileBytes);
        // K rows [t*128, +128) and V rows from the second half of the CTA's region.
        tma_2d(smem + (2 * s) * kTileBytes, &map, 0, int(row0 + t * 128), &full[s]);
        tma_2d(smem + (2 * s + 1) * kTileBytes, &map, 0, int(row0 + rows_per_cta / 2 + t * 128), &full[s]);
      }
    }
  } else {
    uint32_t sink = 0;
    for (int t = 0; t < tiles; ++t) {
      const int s = t % stages;
      mbar_wait(&full[s], (t / stages) & 1);
      sink += reinterpret_cast<const uint32_t*>(smem + (2 * s) * kTileBytes)[tid];
      if (work > 0) {
        const uint64_t w0 = cycle_now();
        while (cycle_now() - w0 < static_cast<uint64_t>(work)) {}
      }
      __syncwarp();
      if ((tid & 31) == 0) mbar_arrive(&empty[s]);
    }
    if (sink == 0x12345678u) cycles[gridDim.x] = sink;  // keep the reads
  }
  __syncthreads();
  if (tid == 0) cycles[blockIdx.x] = static_cast<long long>(cycle_now() - t0);
}

static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult q;
  CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q));
  return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
}

// The buffer as a (rows, 64) 16-bit tensor, boxes of 64 x box_rows, 128B swizzle.
static CUtensorMap make_map(void* buf, long long rows, int box_rows) {
  CUtensorMap map;
  cuuint64_t dims[2] = {64, static_cast<cuuint64_t>(rows)};
  cuuint64_t strides[1] = {kRowBytes};
  cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  cuuint32_t elem[2] = {1, 1};
  CUresult r = encode_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, buf, dims, strides, box, elem,
                           CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                           CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) { printf("cuTensorMapEncodeTiled failed: %d\n", int(r)); exit(1); }
  return map;
}

static double median(std::vector<long long> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : double(v[v.size() / 2]);
}

int main() {
  const long long kBufBytes = 1LL << 30;
  char* buf;
  char* scrub;
  long long* cycles;
  CK(cudaMalloc(&buf, kBufBytes));
  CK(cudaMalloc(&scrub, 256 << 20));
  CK(cudaMalloc(&cycles, 1024 * kMaxReps * sizeof(long long)));
  CK(cudaMemset(buf, 0x3c, kBufBytes));
  const long long buf_rows = kBufBytes / kRowBytes;
  CK(cudaFuncSetAttribute(once_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  CK(cudaFuncSetAttribute(ring_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  int clock_khz = 0;
  CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  std::vector<long long> host(1024 * kMaxReps);

  printf("once: method ctas bytes chunk|box warm|cold -> median cycles, bytes/cycle per SM\n");
  struct Once { int method, chunk_or_box; };
  const Once methods[] = {{kTma, 128}, {kTma, 64}, {kTma, 32}, {kBulk, 16384}, {kBulk, 4096},
                          {kCpAsync, 0}, {kLdg, 0}};
  for (int cold = 0; cold < 2; ++cold) {
    for (int ctas : {1, 132}) {
      for (int bytes : {16384, 32768, 65536, 131072, 196608}) {
        for (const Once& m : methods) {
          const int reps = kMaxReps;
          // warm: every rep reads the same rows (the first rep loads them into L2, the median is warm);
          // cold: each rep its own rows, after a scrub that evicts the buffer from L2.
          if (cold && (long long)reps * ctas * bytes > kBufBytes) continue;
          const int box = m.method == kTma ? m.chunk_or_box : 128;
          CUtensorMap map = make_map(buf, buf_rows, box);
          if (cold) CK(cudaMemset(scrub, cold, 256 << 20));
          once_kernel<<<ctas, 256, 200 * 1024>>>(map, buf, m.method, bytes, m.chunk_or_box, box, cold, reps,
                                                  cycles);
          CK(cudaGetLastError());
          CK(cudaDeviceSynchronize());
          CK(cudaMemcpy(host.data(), cycles, ctas * kMaxReps * sizeof(long long), cudaMemcpyDeviceToHost));
          std::vector<long long> v;
          for (int b = 0; b < ctas; ++b)
            for (int r = 1; r < reps; ++r) v.push_back(host[b * kMaxReps + r]);
          const double c = median(v);
          printf("once %-7s ctas %3d bytes %6d %s %5d %s: %8.0f cycles %6.1f B/cycle\n", kMethodName[m.method],
                 ctas, bytes, m.method == kTma ? "box" : "chunk", m.chunk_or_box, cold ? "cold" : "warm", c,
                 bytes / c);
        }
      }
    }
  }

  printf("ring: K+V boxes of 64 x 128 (32 KB a tile) -> cycles per tile (slope over 4 -> 64 tiles)\n");
  CUtensorMap map = make_map(buf, buf_rows, 128);
  for (int ctas : {1, 64, 132}) {
    for (int stages : {2, 4}) {
      for (int work : {0, 500, 1000}) {
        double at[2];
        const int tile_counts[2] = {4, 64};
        for (int i = 0; i < 2; ++i) {
          const long long rows_per_cta = 2LL * 128 * tile_counts[i];
          std::vector<long long> v;
          for (int rep = 0; rep < 7; ++rep) {
            ring_kernel<<<ctas, 160, 2 * stages * 128 * kRowBytes>>>(map, tile_counts[i], stages, work,
                                                                     rows_per_cta, cycles);
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(host.data(), cycles, ctas * sizeof(long long), cudaMemcpyDeviceToHost));
            if (rep > 0) v.push_back(*std::max_element(host.begin(), host.begin() + ctas));
          }
          at[i] = median(v);
        }
        const double slope = (at[1] - at[0]) / (tile_counts[1] - tile_counts[0]);
        printf("ring ctas %3d stages %d work %4d: 4 tiles %7.0f cycles, 64 tiles %8.0f; %6.0f cycles/tile "
               "(%5.1f B/cycle)\n", ctas, stages, work, at[0], at[1], slope, 32768.0 / slope);
      }
    }
  }
  printf("SM clock attribute: %d MHz\n", clock_khz / 1000);
  return 0;
}
