// Host cost of the driver calls an sm90 launch makes before its kernel runs (issue 8's host path):
// the driver entry-point lookup CUTLASS's host adapter makes per TMA descriptor (without
// CUTLASS_ENABLE_DIRECT_CUDA_DRIVER_CALL), one cuTensorMapEncodeTiled of a 4-D Q/K/V-like map, and
// the launch of an empty kernel with the PDL attribute. Median of 7 repeats of 20000 calls each.
//   nvcc -O2 -std=c++17 -arch=sm_90a benchmarks/experiments/small/driver_calls.cu -o /tmp/driver_calls && /tmp/driver_calls
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

__global__ void empty_kernel(int) {}

template <class F>
double median_us(F&& f, int calls = 20000, int repeats = 7) {
  std::vector<double> us;
  for (int r = 0; r < repeats; ++r) {
    auto const t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f();
    auto const t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / calls);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

int main() {
  void* buf = nullptr;
  cudaMalloc(&buf, 64 << 20);
  using Encode = decltype(&cuTensorMapEncodeTiled);
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
  auto const encode = reinterpret_cast<Encode>(fn);
  if (encode == nullptr) { std::printf("no cuTensorMapEncodeTiled\n"); return 1; }

  double const lookup = median_us([] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
  });
  // (D = 64, S = 512, H = 8, B = 1) fp16, box 64 x 128, 128-byte swizzle: the seed shape's K map.
  CUtensorMap map;
  cuuint64_t dims[4] = {64, 512, 8, 1}, strides[3] = {128, 128 * 512, 128 * 512 * 8};
  cuuint32_t box[4] = {64, 128, 1, 1}, elem[4] = {1, 1, 1, 1};
  auto encode_one = [&] {
    encode(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, buf, dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
           CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  };
  double const encode_us = median_us(encode_one);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(64);
  config.blockDim = dim3(384);
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = 1;
  double const launch = median_us([&] { cudaLaunchKernelEx(&config, empty_kernel, 0); }, 2000);
  cudaStreamSynchronize(stream);
  std::printf("entry-point lookup %.3f us, cuTensorMapEncodeTiled %.3f us, empty launch (PDL) %.3f us\n", lookup,
              encode_us, launch);
  std::printf("per sm90 launch (4 maps): lookups %.2f us, encodes %.2f us\n", 4 * lookup, 4 * encode_us);
  return 0;
}
