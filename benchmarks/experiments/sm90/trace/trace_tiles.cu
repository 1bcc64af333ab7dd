// Where a persistent sm90 CTA's cycles go, tile by tile: each consumer WG's leader stamps clock64
// at fixed points of every tile (trace_hooks.cuh, inserted by trace_patch.py into a copy of the
// headers) and sums its waits in the key loop; the producer stamps its loads.
//   trace_tiles <variant> B H S [warmup_ms]
// Prints the untraced kernel's time (events, median of 20 after a warm-up at the power cap), the
// traced one's, and per-tile / per-iteration means in cycles.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "flashcore/api.h"

using flashcore::FwdParams;
using Fn = cudaError_t (*)(FwdParams const&, cudaStream_t, uint64_t*);
#define DECL(n) __attribute__((weak)) cudaError_t n(FwdParams const&, cudaStream_t, uint64_t*); \
  __attribute__((weak)) cudaError_t n##_base(FwdParams const&, cudaStream_t, uint64_t*);
DECL(d64_nc_m192) DECL(d64_c_m128_pp) DECL(d128_nc_pp) DECL(d256_c_n64)
struct Variant { const char* name; Fn traced, base; int d, wgs; };
static const Variant kVariants[] = {
    {"d64_nc_m192", d64_nc_m192, d64_nc_m192_base, 64, 3},
    {"d64_c_m128_pp", d64_c_m128_pp, d64_c_m128_pp_base, 64, 2},
    {"d128_nc_pp", d128_nc_pp, d128_nc_pp_base, 128, 2},
    {"d256_c_n64", d256_c_n64, d256_c_n64_base, 256, 2},
};
constexpr int kEvents = 32, kTiles = 64, kSlots = 4;

#define CK(x)                                                                          \
  do {                                                                                 \
    cudaError_t e_ = (x);                                                              \
    if (e_ != cudaSuccess) { printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); exit(2); } \
  } while (0)

__global__ void fill(uint16_t* t, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t x = uint32_t(i) * 2654435761u ^ seed;
    x ^= x >> 15; x *= 0x2c1b3c6du; x ^= x >> 12;
    float u = (x >> 8) * (1.f / 16777216.f) * 2.f - 1.f;  // [-1, 1)
    uint32_t b; memcpy(&b, &u, 4);
    t[i] = uint16_t(b >> 16);  // bf16 by truncation
  }
}

int main(int argc, char** argv) {
  if (argc < 5) { printf("usage: %s <variant> B H S [warmup_ms]\n", argv[0]); return 1; }
  Variant const* var = nullptr;
  for (auto const& v : kVariants) if (std::string(argv[1]) == v.name) var = &v;
  if (!var || !var->traced || !var->base) { printf("variant %s not built\n", argv[1]); return 1; }
  int B = atoi(argv[2]), H = atoi(argv[3]), S = atoi(argv[4]), D = var->d;
  double warmup_ms = argc > 5 ? atof(argv[5]) : 300.0;
  size_t n = size_t(B) * H * S * D;
  uint16_t *q, *k, *v, *o;
  float* lse;
  CK(cudaMalloc(&q, n * 2)); CK(cudaMalloc(&k, n * 2)); CK(cudaMalloc(&v, n * 2)); CK(cudaMalloc(&o, n * 2));
  CK(cudaMalloc(&lse, size_t(B) * H * S * 4));
  fill<<<1024, 256>>>(q, n, 1); fill<<<1024, 256>>>(k, n, 2); fill<<<1024, 256>>>(v, n, 3);
  FwdParams p{};
  p.q = q; p.k = k; p.v = v; p.o = o; p.lse = lse;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = D;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = int64_t(S) * D;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = int64_t(S) * D * H;
  p.batch = B; p.heads = H; p.heads_k = H; p.seqlen_q = S; p.seqlen_k = S;
  p.causal_offset = 0; p.left_offset = -S;  // top-left causal, no left window (api.h)
  p.scale = 1.f / sqrtf(float(D)); p.scale_log2 = p.scale * 1.4426950408889634f; p.scale_log2_abs = p.scale_log2;
  CK(cudaDeviceGetAttribute(&p.num_sms, cudaDevAttrMultiProcessorCount, 0));
  CK(cudaMalloc(&p.workspace, 256));
  size_t trace_n = size_t(p.num_sms) * kSlots * kTiles * kEvents;
  uint64_t* tb;
  CK(cudaMalloc(&tb, trace_n * 8));

  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  auto time_fn = [&](Fn fn, uint64_t* buf, int iters) {
    std::vector<float> ms;
    for (int i = 0; i < iters; ++i) {
      CK(cudaMemsetAsync(p.workspace, 0, 256));
      if (buf) CK(cudaMemsetAsync(buf, 0, trace_n * 8));
      CK(cudaEventRecord(e0));
      CK(fn(p, 0, buf));
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float t; CK(cudaEventElapsedTime(&t, e0, e1)); ms.push_back(t * 1000.f);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  // Warm-up: the card at the clocks this kernel holds it at (power cap), as the benchmarks time.
  float one = time_fn(var->base, nullptr, 3);
  time_fn(var->base, nullptr, std::max(1, int(warmup_ms * 1000.0 / std::max(one, 1.f))));
  float base_us = time_fn(var->base, nullptr, 21);
  float traced_us = time_fn(var->traced, tb, 21);  // the last call's trace stays in tb
  float base2_us = time_fn(var->base, nullptr, 21);

  std::vector<uint64_t> h(trace_n);
  CK(cudaMemcpy(h.data(), tb, trace_n * 8, cudaMemcpyDeviceToHost));
  auto at = [&](int cta, int slot, int tile, int ev) { return h[((size_t(cta) * kSlots + slot) * kTiles + tile) * kEvents + ev]; };

  // Per-tile phases, summed over every (CTA, WG, tile); per-iteration waits over every loop iteration.
  enum { QW, K0, PRO, LOOP, LASTPV, EPI, GAP, TOTAL, NPH };
  const char* ph_names[NPH] = {"q_wait", "k0_wait", "prologue", "loop", "last_pv", "epilogue", "to_next", "tile"};
  // Sub-phases: prologue = K landed -> QK^T done -> softmax; epilogue = mma end -> next tile known
  // -> finalize -> LSE written -> pre-write sync -> O in smem + fence -> sync -> store issued.
  const int sub_from[] = {2, 13, 5, 22, 16, 17, 18, 19, 20};
  const int sub_to[] = {13, 3, 22, 16, 17, 18, 19, 20, 6};
  const char* sub_names[] = {"pro.qk", "pro.softmax", "epi.next_tile", "epi.finalize", "epi.lse", "epi.wait_sync",
                             "epi.stsm_fence", "epi.sync", "epi.tma_issue"};
  constexpr int NSUB = 9;
  double sub[NSUB] = {};
  long anomalies = 0;
  double ph[NPH] = {}, it_kv = 0, it_sched = 0, it_s = 0, it_pv = 0, it_smax = 0;
  long tiles_counted = 0;
  long tiles = 0, loop_iters = 0, total_tiles_with_next = 0;
  double cta_pro = 0, cta_tail = 0, mhz_sum = 0;
  int ctas = 0, max_tiles = 0;
  uint64_t g_min = UINT64_MAX, g_max = 0;
  for (int c = 0; c < p.num_sms; ++c) {
    uint64_t c_entry = at(c, 0, 0, 13), g_entry = at(c, 0, 0, 14), g_exit = at(c, 0, 0, 15), c_exit = at(c, 0, 0, 12);
    if (!c_entry || !g_exit) continue;
    ++ctas;
    g_min = std::min(g_min, g_entry); g_max = std::max(g_max, g_exit);
    mhz_sum += double(c_exit - c_entry) / double(g_exit - g_entry) * 1000.0;
    for (int w = 1; w <= var->wgs; ++w) {
      int t = 0;
      for (; t < kTiles && at(c, w, t, 0); ++t) {
        uint64_t const* e = &h[((size_t(c) * kSlots + w) * kTiles + t) * kEvents];
        // Tiles stamped outside this CTA's entry and exit are left from earlier calls: with the
        // dynamic scheduler a CTA's tile count varies between calls, and those entries were seen
        // to survive the memset before the traced call (not understood; the kept tiles add up to
        // the problem's tile count).
        if (e[0] < c_entry || e[6] > c_exit) break;
        if (!e[5]) continue;  // a tile without keys takes no loop
        ph[QW] += double(e[1] - e[0]); ph[K0] += double(e[2] - e[1]); ph[PRO] += double(e[3] - e[2]);
        ph[LOOP] += double(e[4] - e[3]); ph[LASTPV] += double(e[5] - e[4]); ph[EPI] += double(e[6] - e[5]);
        it_kv += double(e[7]); it_sched += double(e[8]); it_s += double(e[9]); it_pv += double(e[10]);
        it_smax += double(e[12]);
        for (int i = 0; i < NSUB; ++i) sub[i] += double(int64_t(e[sub_to[i]] - e[sub_from[i]]));
        loop_iters += long(e[11]) - 1;
        ++tiles;
        bool const next_ok = t + 1 < kTiles && at(c, w, t + 1, 0) >= c_entry && at(c, w, t + 1, 6) <= c_exit &&
                             at(c, w, t + 1, 0) != 0;
        if (next_ok && at(c, w, t + 1, 0) < e[6]) {
          if (anomalies++ == 0) {
            printf("  anomaly: CTA %d WG %d tile %d ends after tile %d starts; events:", c, w, t, t + 1);
            for (int i = 0; i < kEvents; ++i) printf(" %llu", (unsigned long long)e[i]);
            printf("\n  next:");
            for (int i = 0; i < kEvents; ++i) printf(" %llu", (unsigned long long)at(c, w, t + 1, i));
            printf("\n");
          }
        } else if (next_ok) {
          ph[GAP] += double(at(c, w, t + 1, 0) - e[6]);
          ph[TOTAL] += double(at(c, w, t + 1, 0) - e[0]);
          ++total_tiles_with_next;
        }
      }
      max_tiles = std::max(max_tiles, t);
      tiles_counted += t;
      if (w == 1 && at(c, 1, 0, 0)) {
        cta_pro += double(at(c, 1, 0, 0) - c_entry);
        cta_tail += double(c_exit - at(c, 1, std::max(t - 1, 0), 6));
      }
    }
  }
  double mhz = mhz_sum / std::max(ctas, 1);
  printf("%s B=%d H=%d S=%d D=%d: untraced %.1f / %.1f us, traced %.1f us (+%.1f %%), span %.1f us, %d CTAs, "
         "<= %d tiles a WG, SM clock %.0f MHz\n",
         var->name, B, H, S, D, base_us, base2_us, traced_us, 100.0 * (traced_us / base_us - 1.0),
         (g_max - g_min) / 1000.0, ctas, max_tiles, mhz);
  if (max_tiles >= kTiles) printf("  (tiles past %d not traced)\n", kTiles);
  printf("  WG-tiles traced: %ld (the problem has %ld)\n", tiles_counted,
         long(B) * H * ((S + 64 * var->wgs - 1) / (64 * var->wgs)) * var->wgs);
  printf("  per tile (cycles, mean over %ld WG-tiles; %.2f loop iterations each):", tiles, double(loop_iters) / tiles);
  for (int i = 0; i < NPH; ++i) {
    long d = (i == GAP || i == TOTAL) ? total_tiles_with_next : tiles;
    printf(" %s %.0f", ph_names[i], ph[i] / std::max(d, 1L));
  }
  printf("\n  per loop iteration (cycles): %.0f, of which waits: K/V %.0f, ping-pong token %.0f, S wgmma %.0f, "
         "PV wgmma %.0f; softmax %.0f\n",
         ph[LOOP] / std::max(loop_iters, 1L), it_kv / std::max(loop_iters, 1L), it_sched / std::max(loop_iters, 1L),
         it_s / std::max(loop_iters, 1L), it_pv / std::max(loop_iters, 1L), it_smax / std::max(loop_iters, 1L));
  printf("  sub-phases (cycles per tile):");
  for (int i = 0; i < NSUB; ++i) printf(" %s %.0f", sub_names[i], sub[i] / std::max(tiles, 1L));
  printf("\n");
  if (anomalies) printf("  %ld tiles ended after the next one started (left out of to_next)\n", anomalies);
  if (getenv("FC_TRACE_DUMP")) {  // the raw buffer, for a closer look
    std::string path = std::string(getenv("FC_TRACE_DUMP")) + "/trace_" + var->name + "_s" + std::to_string(S) + ".bin";
    if (FILE* f = fopen(path.c_str(), "wb")) { fwrite(h.data(), 8, h.size(), f); fclose(f); }
  }
  printf("  per CTA: entry to first tile %.0f cycles, last epilogue to exit %.0f cycles\n", cta_pro / std::max(ctas, 1),
         cta_tail / std::max(ctas, 1));
  return 0;
}
