// The one translation unit that sees torch: registers the flashcore ops and collects the
// variants that the generated kernel objects register from their static initializers.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "flashcore/api.h"

namespace flashcore {
namespace {
std::vector<VariantInfo>& variant_list() {
  static std::vector<VariantInfo> variants;  // filled during library load, read-only after
  return variants;
}

// "name:source_hash" per variant, in id order (the id is the index).
std::vector<std::string> list_variants() {
  std::vector<std::string> out;
  for (auto const& v : variant_list()) out.push_back(std::string(v.name) + ":" + v.source_hash);
  return out;
}

at::ScalarType scalar_type(int dtype) { return dtype == 0 ? at::kHalf : at::kBFloat16; }

// TORCH_CHECK_VALUE / _TYPE surface in Python as ValueError / TypeError.
void check_operand(at::Tensor const& t, char const* what, VariantInfo const& info, at::Tensor const& q) {
  TORCH_CHECK_VALUE(t.is_cuda() && t.device() == q.device(), what, " must be a CUDA tensor on ", q.device(),
                    ", got ", t.device());
  TORCH_CHECK_VALUE(t.dim() == 4, what, " must be (batch, heads, seqlen, head_dim), got ", t.dim(), " dims");
  TORCH_CHECK_TYPE(t.scalar_type() == scalar_type(info.dtype), what, " has dtype ", t.scalar_type(),
                   " but variant ", info.name, " computes ", scalar_type(info.dtype));
  TORCH_CHECK_VALUE(t.size(3) == info.head_dim, what, " head_dim ", t.size(3), " but variant ", info.name,
                    " needs ", info.head_dim);
  TORCH_CHECK_VALUE(t.stride(3) == 1, what, " must have a contiguous last dimension, got strides ", t.strides());
  // The kernels move 128-bit vectors: base and row/head/batch strides must keep 16-byte alignment.
  constexpr int64_t kAlignElems = 16 / 2;
  bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (int d = 0; d < 3; ++d) aligned = aligned && (t.size(d) <= 1 || t.stride(d) % kAlignElems == 0);
  TORCH_CHECK_VALUE(aligned, what, " must be 16-byte aligned with strides that are multiples of ", kAlignElems,
                    " elements (got strides ", t.strides(), ")");
}

std::tuple<at::Tensor, at::Tensor> fwd(int64_t variant, at::Tensor const& q, at::Tensor const& k,
                                       at::Tensor const& v, double scale, std::optional<at::Tensor> out_opt,
                                       std::optional<at::Tensor> lse_opt) {
  auto const& variants = variant_list();
  TORCH_CHECK(variant >= 0 && variant < int64_t(variants.size()), "unknown flashcore variant id ", variant);
  VariantInfo const& info = variants[variant];
  check_operand(q, "query", info, q);
  check_operand(k, "key", info, q);
  check_operand(v, "value", info, q);
  int64_t const B = q.size(0), H = q.size(1), Sq = q.size(2), Sk = k.size(2);
  TORCH_CHECK_VALUE(k.size(0) == B && v.size(0) == B && k.size(1) == H && v.size(1) == H && v.size(2) == Sk,
              "key/value must be (", B, ", ", H, ", seqlen_k, ", info.head_dim, ")");
  c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out, lse;
  if (out_opt.has_value()) {
    out = *out_opt;
    check_operand(out, "out", info, q);
    TORCH_CHECK_VALUE(out.size(0) == B && out.size(1) == H && out.size(2) == Sq, "out must be (", B, ", ", H, ", ", Sq,
                ", ", info.head_dim, ")");
  } else {
    out = at::empty({B, H, Sq, info.head_dim}, q.options());
  }
  if (lse_opt.has_value()) {
    lse = *lse_opt;
    TORCH_CHECK_VALUE(lse.is_cuda() && lse.device() == q.device() && lse.scalar_type() == at::kFloat &&
                    lse.is_contiguous() && lse.dim() == 3 && lse.size(0) == B && lse.size(1) == H && lse.size(2) == Sq,
                "lse must be a contiguous float32 CUDA tensor of shape (", B, ", ", H, ", ", Sq, ")");
  } else {
    lse = at::empty({B, H, Sq}, q.options().dtype(at::kFloat));
  }
  if (B == 0 || H == 0 || Sq == 0) return {out, lse};
  TORCH_CHECK_VALUE(Sk > 0, "key/value sequence length is 0: attention over no keys is undefined");

  FwdParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  p.o_batch_stride = out.stride(0), p.o_head_stride = out.stride(1), p.o_row_stride = out.stride(2);
  p.batch = int(B), p.heads = int(H), p.seqlen_q = int(Sq), p.seqlen_k = int(Sk);
  p.scale = float(scale);
  p.scale_log2 = float(scale * 1.4426950408889634);
  cudaError_t err = info.run(p, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "flashcore kernel ", info.name, " failed to launch: ", cudaGetErrorString(err));
  return {out, lse};
}
}  // namespace

void register_variant(VariantInfo const& info) { variant_list().push_back(info); }

}  // namespace flashcore

TORCH_LIBRARY(flashcore, m) {
  m.def("variants() -> str[]", &flashcore::list_variants);
  // out/lse: optional preallocated results (written in place; returned as the results).
  m.def("fwd(int variant, Tensor q, Tensor k, Tensor v, float scale, Tensor? out=None, Tensor? lse=None)"
        " -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flashcore, CUDA, m) { m.impl("fwd", &flashcore::fwd); }
