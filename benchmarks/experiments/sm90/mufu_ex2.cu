#include <cstdio>
#include <cuda_fp16.h>
__global__ void k32(float* out, int iters, long long* cyc) {
  float a0 = threadIdx.x * -1e-3f, a1 = a0 - 0.1f, a2 = a0 - 0.2f, a3 = a0 - 0.3f, a4=a0-0.4f,a5=a0-0.5f,a6=a0-0.6f,a7=a0-0.7f;
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
#define E(x) asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(x));
    E(a0) E(a1) E(a2) E(a3) E(a4) E(a5) E(a6) E(a7)
  }
  long long t1 = clock64();
  out[blockIdx.x * blockDim.x + threadIdx.x] = a0 + a1 + a2 + a3+a4+a5+a6+a7;
  if (threadIdx.x == 0 && blockIdx.x == 0) *cyc = t1 - t0;
}
__global__ void k16(float* out, int iters, long long* cyc) {
  unsigned a[8];
  for (int j = 0; j < 8; ++j) { __half2 h = __floats2half2_rn(threadIdx.x * -1e-3f - j * 0.1f, -0.05f * j); a[j] = *reinterpret_cast<unsigned*>(&h); }
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
#define H(x) asm volatile("ex2.approx.f16x2 %0, %0;" : "+r"(x));
    H(a[0]) H(a[1]) H(a[2]) H(a[3]) H(a[4]) H(a[5]) H(a[6]) H(a[7])
  }
  long long t1 = clock64();
  float s = 0; for (int j = 0; j < 8; ++j) { __half2 h = *reinterpret_cast<__half2*>(&a[j]); s += __low2float(h) + __high2float(h); }
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
  if (threadIdx.x == 0 && blockIdx.x == 0) *cyc = t1 - t0;
}
__global__ void kbf(float* out, int iters, long long* cyc) {
  unsigned a[8];
  for (int j = 0; j < 8; ++j) { a[j] = 0xbf00bf00u + j; }
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
#define B(x) asm volatile("ex2.approx.ftz.bf16x2 %0, %0;" : "+r"(x));
    B(a[0]) B(a[1]) B(a[2]) B(a[3]) B(a[4]) B(a[5]) B(a[6]) B(a[7])
  }
  long long t1 = clock64();
  unsigned s = 0; for (int j = 0; j < 8; ++j) s ^= a[j];
  out[blockIdx.x * blockDim.x + threadIdx.x] = float(s);
  if (threadIdx.x == 0 && blockIdx.x == 0) *cyc = t1 - t0;
}
// Throughput of MUFU.EX2 per SM on fp32 against the 16-bit forms (ex2.approx.f16x2 and .bf16x2
// compile to two MUFU.EX2.F16 / .BF16 each on sm_90a): does a packed exp2 take MUFU time off
// the softmax? nvcc -arch=sm_90a -O3 -o /tmp/mufu mufu_ex2.cu && /tmp/mufu
int main() {
  float* out; long long* cyc; cudaMalloc(&out, 132 * 1024 * 4); cudaMallocManaged(&cyc, 8);
  int iters = 4096;
  for (int threads : {128, 512, 1024}) {
    k32<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    k32<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    double c32 = double(*cyc);
    k16<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    k16<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    double c16 = double(*cyc);
    kbf<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    kbf<<<132, threads>>>(out, iters, cyc); cudaDeviceSynchronize();
    double cbf = double(*cyc);
    double n = double(iters) * 8 * threads;  // instructions (thread-level) per SM
    printf("threads %4d: f32 %.2f exps/clk/SM; f16x2 %.2f instr/clk/SM = %.2f exps/clk/SM; bf16x2 %.2f exps/clk/SM\n", threads,
           n / c32, n / c16, 2 * n / c16, 2 * n / cbf);
  }
  printf("err %s\n", cudaGetErrorString(cudaGetLastError()));
}
