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
//   probe  : do loads issued before a stretch of work land during it?
// Every CTA reads its own region; `cold` walks fresh addresses of a 1 GB buffer (after a
// 256 MB scrub) so that reads come from HBM. Prints one line per case; medians over the reps.
// The ring's per-tile cycles turned out to be its own loop's latency (runtime divisions, parameter
// loads, clock reads), not the loads: read its parts, not its slope (NOTES, 2026-11-27 08:57-).
//   nvcc -O3 -std=c++17 -arch=sm_90a -o ingest ingest.cu && ./ingest [once] [probe] [ring]
#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
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
__device__ __forceinline__ void mbar_poll(uint64_t* bar, uint32_t parity) {  // test_wait: never suspends
  asm volatile(
      "{\n .reg .pred p;\n W: mbarrier.test_wait.parity.shared::cta.b64 p, [%0], %1;\n"
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
                                                   int cold, int reps, int spin, long long* cycles) {
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
      if (spin > 0) {
        const uint64_t w0 = cycle_now();
        while (cycle_now() - w0 < static_cast<uint64_t>(spin)) {}
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

// The kernels' pattern: one lane of warp `producer_warp` loads K and V boxes of 64 x 128 into
// `stages` slots; `consumer_warps` other warps of warps 0-4 wait for each slot, do `work` cycles of
// work of kind `work_kind` (0: spin on the clock, 1: nanosleep, 2: a dependent FFMA chain), and free
// it (one arrive per warp). stamps (if not null): for each tile the cycle its loads were issued, the
// cycle consumer thread 0 saw it land and (with `watch`) the cycle a watcher warp saw it land.
enum WorkKind { kSpin = 0, kSleep = 1, kFfma = 2 };
static const char* kWorkName[] = {"spin", "sleep", "ffma"};
struct RingOpts {
  int stages = 4, work = 0, work_kind = kSpin;
  int producer_warp = 4, consumer_warps = 4;
  bool early_release = false;  // free the slot before the work
  bool consumer_poll = false;  // consumers wait with test_wait (never suspends) instead of try_wait
  bool touch_next = false;     // consumers test the next tile's barrier once, early
  bool producer_poll = false;  // the producer waits with test_wait
  bool watch = false;          // the first non-consumer warp stamps each tile's landing
  int read_mode = 0;           // 0: no shared-memory read; 1: a word of the landed slot; 2: of a buffer TMA never writes
};
__global__ void __launch_bounds__(160) ring_kernel(const __grid_constant__ CUtensorMap map, int tiles, RingOpts o,
                                                   long long rows_per_cta, long long* cycles, long long* parts,
                                                   long long* stamps) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t full[8], empty[8];
  __shared__ uint32_t quiet[160];
  constexpr int kTileBytes = 128 * kRowBytes;  // one 128-row box of K (or V)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int stages = o.stages, work = o.work, work_kind = o.work_kind, producer_warp = o.producer_warp;
  const int consumer_warps = o.consumer_warps, read_mode = o.read_mode;
  const bool early_release = o.early_release, poll = o.consumer_poll, touch_next = o.touch_next;
  const bool producer_poll = o.producer_poll, watch = o.watch;
  quiet[tid] = tid;
  // consumer index: the warps of 0-4 other than the producer, in order
  const int consumer = warp < producer_warp ? warp : warp - 1;
  if (tid == 0) {
    for (int s = 0; s < stages; ++s) { mbar_init(&full[s], 1); mbar_init(&empty[s], consumer_warps); }
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  const long long row0 = blockIdx.x * rows_per_cta;
  const uint64_t t0 = cycle_now();
  if (warp == producer_warp) {
    if (lane == 0) {
      for (int t = 0; t < tiles; ++t) {
        const int s = t % stages;
        if (t >= stages) {
          if (producer_poll) mbar_poll(&empty[s], ((t / stages) - 1) & 1);
          else mbar_wait(&empty[s], ((t / stages) - 1) & 1);
        }
        if (stamps && blockIdx.x == 0) stamps[3 * t] = static_cast<long long>(cycle_now() - t0);
        mbar_expect_tx(&full[s], 2 * kTileBytes);
        // K rows [t*128, +128) and V rows from the second half of the CTA's region.
        tma_2d(smem + (2 * s) * kTileBytes, &map, 0, int(row0 + t * 128), &full[s]);
        tma_2d(smem + (2 * s + 1) * kTileBytes, &map, 0, int(row0 + rows_per_cta / 2 + t * 128), &full[s]);
      }
    }
  } else if (consumer < consumer_warps) {
    uint32_t sink = 0;
    float acc = float(tid);
    long long in_wait = 0, in_wait2 = 0, in_work = 0, in_rest = 0;  // consumer thread 0's cycles by part
    uint64_t prev = cycle_now();
    for (int t = 0; t < tiles; ++t) {
      const int s = t % stages;
      const uint64_t c0 = cycle_now();
      if (poll) mbar_poll(&full[s], (t / stages) & 1);
      else mbar_wait(&full[s], (t / stages) & 1);
      const uint64_t c1a = cycle_now();
      if (poll) mbar_poll(&full[s], (t / stages) & 1);  // again, on the completed phase
      else mbar_wait(&full[s], (t / stages) & 1);
      const uint64_t c1 = cycle_now();
      in_rest += c0 - prev;
      in_wait += c1a - c0;
      in_wait2 += c1 - c1a;
      if (touch_next && t + 1 < tiles) {  // one non-blocking test of the next tile's barrier
        uint32_t done;
        asm volatile("{\n .reg .pred p;\n mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n" : "=r"(done) : "r"(smem_u32(&full[(t + 1) % stages])),
                     "r"(((t + 1) / stages) & 1));
        sink += done;
      }
      if (stamps && blockIdx.x == 0 && tid == (producer_warp == 0 ? 32 : 0))
        stamps[3 * t + 1] = static_cast<long long>(cycle_now() - t0);
      // read_mode 0: no shared-memory read; 1: a word of the landed slot; 2: a word of a buffer no
      // TMA writes (does a generic read wait for the async proxy's writes in flight?)
      if (read_mode == 1) sink += reinterpret_cast<const volatile uint32_t*>(smem + (2 * s) * kTileBytes)[tid];
      else if (read_mode == 2) sink += reinterpret_cast<const volatile uint32_t*>(quiet)[tid];
      if (early_release) { __syncwarp(); if (lane == 0) mbar_arrive(&empty[s]); }
      if (work > 0) {
        if (work_kind == kSpin) {
          const uint64_t w0 = cycle_now();
          while (cycle_now() - w0 < static_cast<uint64_t>(work)) {}
        } else if (work_kind == kSleep) {
          const uint64_t w0 = cycle_now();
          while (cycle_now() - w0 < static_cast<uint64_t>(work)) __nanosleep(32);
        } else {
          for (int i = 0; i < work / 4; ++i) acc = fmaf(acc, 1.0001f, 0.5f);  // ~4 cycles a link
        }
      }
      prev = cycle_now();
      in_work += prev - c1;
      if (!early_release) { __syncwarp(); if (lane == 0) mbar_arrive(&empty[s]); }
    }
    if (sink == 0x12345678u || acc == 1.2345f) cycles[gridDim.x] = sink;  // keep the work
    if (tid == 0 && blockIdx.x == 0) { parts[0] = in_wait; parts[1] = in_work; parts[2] = in_rest; parts[3] = in_wait2; }
  } else if (watch && consumer == consumer_warps) {
    // the first non-consumer warp: waits for each tile in order and stamps when it landed
    for (int t = 0; t < tiles; ++t) {
      mbar_wait(&full[t % stages], (t / stages) & 1);
      if (stamps && blockIdx.x == 0 && lane == 0) stamps[3 * t + 2] = static_cast<long long>(cycle_now() - t0);
    }
  }
  __syncthreads();
  if (tid == 0) cycles[blockIdx.x] = static_cast<long long>(cycle_now() - t0);
}

// Do TMA loads land while the CTA's warps are busy? Thread 0 issues 128 KB (8 boxes of 64 x 128);
// then warps `work_warps` (a bit mask) do work of kind `kind` (0: spin on the clock, 1: a dependent
// FFMA chain of `work` links, 2: `work` / 100 nanosleeps of 100 ns, no clock reads) while the other
// warps go straight to the barrier; then everyone waits. Thread 0 stamps: after issue, after work,
// after the wait, after a second wait on the completed phase.
__global__ void __launch_bounds__(256) probe_kernel(const __grid_constant__ CUtensorMap map, int kind, int work,
                                                    unsigned work_warps, int reps, long long* stamps) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bar;
  const int tid = threadIdx.x, warp = tid / 32;
  if (tid == 0) { mbar_init(&bar, 1); asm volatile("fence.mbarrier_init.release.cluster;"); }
  __syncthreads();
  float acc = float(tid);
  for (int rep = 0; rep < reps; ++rep) {
    __syncthreads();
    const uint64_t t0 = cycle_now();
    if (tid == 0) {
      mbar_expect_tx(&bar, 131072);
      for (int r = 0; r < 1024; r += 128) tma_2d(smem + r * kRowBytes, &map, 0, r, &bar);
    }
    const uint64_t t1 = cycle_now();
    if ((work_warps >> warp) & 1) {
      if (kind == 0) {
        while (cycle_now() - t1 < static_cast<uint64_t>(work)) {}
      } else if (kind == 1) {
        for (int i = 0; i < work; ++i) acc = fmaf(acc, 1.0001f, 0.5f);
      } else {
        for (int i = 0; i < work / 100; ++i) __nanosleep(100);
      }
    }
    const uint64_t t2 = cycle_now();
    mbar_wait(&bar, rep & 1);
    const uint64_t t3 = cycle_now();
    mbar_wait(&bar, rep & 1);
    const uint64_t t4 = cycle_now();
    if (tid == 0) {
      long long* st = stamps + 4 * rep;
      st[0] = t1 - t0; st[1] = t2 - t0; st[2] = t3 - t0; st[3] = t4 - t0;
    }
  }
  if (acc == 1.2345f) stamps[0] = 0;
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

int main(int argc, char** argv) {
  // sections: once probe ring (default: all)
  auto want = [&](const char* name) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; ++i) if (!strcmp(argv[i], name)) return true;
    return false;
  };
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

  if (want("once")) {
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
                                                  0, cycles);
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

  }

  CUtensorMap map = make_map(buf, buf_rows, 128);
  if (want("probe")) {
    CK(cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
    printf("probe: 128 KB by TMA, work between issue and wait; medians of cycles from start: issued / "
           "work done / landed / second wait\n");
    long long* pst;
    CK(cudaMalloc(&pst, 4 * kMaxReps * sizeof(long long)));
    struct Probe { int kind, work; unsigned warps; const char* what; };
    const Probe probes[] = {{0, 0, 0xff, "no work"},
                            {0, 1000, 0xff, "spin 1000, all warps"}, {0, 3000, 0xff, "spin 3000, all warps"},
                            {0, 3000, 0xfe, "spin 3000, warps 1-7 (thread 0 waits)"},
                            {0, 3000, 0x01, "spin 3000, warp 0 only"},
                            {1, 300, 0xff, "ffma 300 links, all warps"}, {1, 700, 0xff, "ffma 700 links, all warps"},
                            {1, 700, 0x01, "ffma 700 links, warp 0 only"},
                            {2, 1500, 0xff, "nanosleep 1500 ns, all warps"}, {2, 1500, 0x01, "nanosleep 1500 ns, warp 0"}};
    for (const Probe& pr : probes) {
      probe_kernel<<<1, 256, 200 * 1024>>>(map, pr.kind, pr.work, pr.warps, kMaxReps, pst);
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      std::vector<long long> st(4 * kMaxReps);
      CK(cudaMemcpy(st.data(), pst, st.size() * sizeof(long long), cudaMemcpyDeviceToHost));
      double med[4];
      for (int k = 0; k < 4; ++k) {
        std::vector<long long> v;
        for (int r = 1; r < kMaxReps; ++r) v.push_back(st[4 * r + k]);
        med[k] = median(v);
      }
      printf("probe %-40s: %6.0f / %6.0f / %6.0f / %6.0f\n", pr.what, med[0], med[1], med[2], med[3]);
    }
  }
  if (!want("ring")) return 0;
  printf("ring: K+V boxes of 64 x 128 (32 KB a tile), warm, 1 CTA -> cycles per tile (slope over 4 -> 64 tiles);\n"
         "  the consumer's thread 0 splits its cycles into: the first wait for a tile, a second wait on the same\n"
         "  completed phase, the work (with the loop's parameter loads), the rest (release, loop)\n");
  long long* stamps;
  CK(cudaMalloc(&stamps, 3 * 64 * sizeof(long long)));
  long long* parts;
  CK(cudaMalloc(&parts, 4 * sizeof(long long)));
  auto ring = [&](int ctas, RingOpts o, const char* what = "", bool print_stamps = false) {
    const int smem_bytes = 2 * o.stages * 128 * kRowBytes;
    double at[2];
    const int tile_counts[2] = {4, 64};
    for (int i = 0; i < 2; ++i) {
      const long long rows_per_cta = 2LL * 128 * tile_counts[i];
      std::vector<long long> v;
      for (int rep = 0; rep < 7; ++rep) {
        ring_kernel<<<ctas, 160, smem_bytes>>>(map, tile_counts[i], o, rows_per_cta, cycles, parts, nullptr);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(host.data(), cycles, ctas * sizeof(long long), cudaMemcpyDeviceToHost));
        if (rep > 0) v.push_back(*std::max_element(host.begin(), host.begin() + ctas));
      }
      at[i] = median(v);
    }
    const double slope = (at[1] - at[0]) / (tile_counts[1] - tile_counts[0]);
    long long hp[4];
    CK(cudaMemcpy(hp, parts, sizeof(hp), cudaMemcpyDeviceToHost));  // of the last 64-tile run
    printf("ring ctas %3d stages %d work %4d %-5s producer warp %d consumers %d read %d %s: 4 tiles %6.0f, "
           "64 tiles %7.0f cycles; %5.0f cycles/tile; consumer per tile: wait %lld, again %lld, work %lld, rest %lld\n",
           ctas, o.stages, o.work, kWorkName[o.work_kind], o.producer_warp, o.consumer_warps, o.read_mode, what, at[0],
           at[1], slope, hp[0] / 64, hp[3] / 64, hp[1] / 64, hp[2] / 64);
    if (print_stamps) {
      std::vector<long long> st(192);
      CK(cudaMemset(stamps, 0, 192 * sizeof(long long)));
      ring_kernel<<<ctas, 160, smem_bytes>>>(map, 64, o, 2LL * 128 * 64, cycles, parts, stamps);
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(st.data(), stamps, 192 * sizeof(long long), cudaMemcpyDeviceToHost));
      printf("  tile: issued / consumer saw it%s (cycles from start), tiles 0-11 and 60-63:\n ",
             o.watch ? " / watcher saw it" : "");
      for (int t = 0; t < 64; ++t)
        if (t < 12 || t >= 60) {
          if (o.watch) printf(" %d:%lld/%lld/%lld", t, st[3 * t], st[3 * t + 1], st[3 * t + 2]);
          else printf(" %d:%lld/%lld", t, st[3 * t], st[3 * t + 1]);
        }
      printf("\n");
    }
  };
  auto opts = [](int stages, int work, int kind) {
    RingOpts o;
    o.stages = stages; o.work = work; o.work_kind = kind;
    return o;
  };
  for (int stages : {2, 4})
    for (int work : {0, 500, 1000}) {
      RingOpts o = opts(stages, work, kSpin);
      o.read_mode = 1;
      ring(1, o);
    }
  for (int work : {0, 500}) ring(1, opts(4, work, kFfma));
  ring(1, opts(4, 500, kSleep));
  RingOpts o = opts(4, 500, kSpin);
  o.early_release = true;
  ring(1, o, "release before the work");
  o = opts(4, 500, kSpin);
  o.producer_warp = 3; o.consumer_warps = 3;
  ring(1, o, "the producer on an SMSP of its own");
  o = opts(4, 500, kSpin);
  o.consumer_warps = 1;
  ring(1, o, "one consumer warp");
  o = opts(4, 500, kSpin);
  o.read_mode = 2;
  ring(1, o, "reads a buffer TMA does not write");
  o = opts(4, 500, kFfma);
  o.consumer_poll = true;
  ring(1, o, "consumers poll with test_wait");
  o = opts(4, 500, kFfma);
  o.touch_next = true;
  ring(1, o, "touch the next tile's barrier early");
  o = opts(4, 500, kFfma);
  o.producer_poll = true;
  ring(1, o, "the producer polls");
  for (int work : {0, 500}) {
    o = opts(4, work, work ? kFfma : kSpin);
    o.consumer_warps = 3; o.watch = true;
    ring(1, o, "a watcher warp stamps the true landings", true);
  }
  for (int ctas : {64, 132}) ring(ctas, opts(4, 0, kSpin), "2 MB a CTA: from HBM");
  printf("SM clock attribute: %d MHz\n", clock_khz / 1000);
  return 0;
}
