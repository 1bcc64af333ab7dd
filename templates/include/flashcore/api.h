// The ABI between generated kernel translation units and the torch binding.
// Kept free of torch (and of CuTe) so kernel sources compile anywhere, fast.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace flashcore {

// One attention forward call. Tensors are (batch, heads, seqlen, head_dim) with the last
// dimension contiguous; strides are in elements. lse is (batch, heads, seqlen_q) fp32, contiguous.
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
  float scale;       // softmax scale applied to Q.K^T
  float scale_log2;  // scale * log2(e): kernels work with exp2
};

using FwdFn = cudaError_t (*)(const FwdParams&, cudaStream_t);

// What a variant computes; the binding checks a call against it before launching.
struct VariantInfo {
  const char* name;         // the config name: fc_<family>_<dtype>_d<D>_<mask>_<tiles>
  const char* source_hash;  // hash of the generated source and the headers it includes
  int dtype;                // 0 = fp16, 1 = bf16 (codegen.config.DTYPES order)
  int head_dim;
  bool causal;
  FwdFn run;
};

// Defined in the binding; each generated translation unit calls it from a static initializer.
void register_variant(const VariantInfo& info);

}  // namespace flashcore
