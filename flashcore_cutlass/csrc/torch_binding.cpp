// The one translation unit that sees torch: registers the flashcore ops and collects the
// variants that the generated kernel objects register from their static initializers.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
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

// Error messages are built from strings only: streaming an integer into c10::str from this
// library crashed (SIGSEGV in ostream::_M_insert<long>) on the H100 image with torch 2.11, while
// strings stream fine. Numbers are formatted with std::to_string first.
std::string num(int64_t x) { return std::to_string(x); }
std::string num(double x) { return std::to_string(x); }
std::string dims(at::IntArrayRef xs) {
  std::string out = "[";
  for (size_t i = 0; i < xs.size(); ++i) out += (i ? ", " : "") + std::to_string(xs[i]);
  return out + "]";
}

// The kernels are sm_90a cubins: any other GPU must fail with a clear message, not a launch error.
// "" when (major, minor) can run them. Exposed as flashcore::arch_error for tests.
std::string arch_error(int64_t major, int64_t minor) {
  if (major == 9 && minor == 0) return "";
  return "flashcore kernels are built for sm_90a (H100/H200); this GPU is sm_" + std::to_string(major) +
         std::to_string(minor);
}

// Checked once per device index (then one relaxed atomic load per call).
constexpr int kMaxDevices = 64;
std::atomic<bool> g_arch_ok[kMaxDevices];  // static storage: zero-initialised (false)

void check_arch(c10::DeviceIndex index) {
  bool const cached = index >= 0 && index < kMaxDevices;
  if (cached && g_arch_ok[index].load(std::memory_order_relaxed)) return;
  int major = 0, minor = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  std::string const err = arch_error(major, minor);
  TORCH_CHECK(err.empty(), err, " (device cuda:", num(int64_t(index)), ")");
  if (cached) g_arch_ok[index].store(true, std::memory_order_relaxed);
}

// [first byte, one past the last byte] spanned by a non-empty tensor (torch strides are >= 0).
std::pair<uintptr_t, uintptr_t> byte_span(at::Tensor const& t) {
  int64_t last = 0;
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
  auto const begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  return {begin, begin + uintptr_t((last + 1) * int64_t(t.element_size()))};
}

// Results are written while other blocks still read the inputs: no result may share memory with
// an input (or with the other result). Conservative: overlapping byte ranges are refused.
void check_no_overlap(at::Tensor const& result, char const* result_name, at::Tensor const& other,
                      char const* other_name) {
  if (result.numel() == 0 || other.numel() == 0) return;
  auto const [a0, a1] = byte_span(result);
  auto const [b0, b1] = byte_span(other);
  TORCH_CHECK_VALUE(a1 <= b0 || b1 <= a0, result_name, " overlaps ", other_name,
                    " in memory; flashcore does not compute in place: pass a separate ", result_name, " tensor");
}

// TORCH_CHECK_VALUE / _TYPE surface in Python as ValueError / TypeError.
void check_operand(at::Tensor const& t, char const* what, VariantInfo const& info, at::Tensor const& q) {
  TORCH_CHECK_VALUE(t.is_cuda(), what, " must be a CUDA tensor, got one on ", t.device().str());
  TORCH_CHECK_VALUE(t.device() == q.device(), what, " is on ", t.device().str(), " but query is on ", q.device().str(),
                    ": all tensors must be on one GPU");
  TORCH_CHECK_VALUE(t.dim() == 4, what, " must be (batch, heads, seqlen, head_dim), got ", num(t.dim()), " dims");
  TORCH_CHECK_TYPE(t.scalar_type() == scalar_type(info.dtype), what, " has dtype ", t.scalar_type(),
                   " but variant ", info.name, " computes ", scalar_type(info.dtype));
  TORCH_CHECK_VALUE(t.size(3) == info.head_dim, what, " head_dim ", num(t.size(3)), " but variant ", info.name,
                    " needs ", num(int64_t(info.head_dim)));
  TORCH_CHECK_VALUE(t.stride(3) == 1, what, " must have a contiguous last dimension, got strides ", dims(t.strides()));
  // The kernels move 128-bit vectors: base and row/head/batch strides must keep 16-byte alignment.
  constexpr int64_t kAlignElems = 16 / 2;
  bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (int d = 0; d < 3; ++d) aligned = aligned && (t.size(d) <= 1 || t.stride(d) % kAlignElems == 0);
  TORCH_CHECK_VALUE(aligned, what, " must be 16-byte aligned with strides that are multiples of ", num(kAlignElems),
                    " elements (got strides ", dims(t.strides()), ")");
}

std::tuple<at::Tensor, at::Tensor> fwd(int64_t variant, at::Tensor const& q, at::Tensor const& k,
                                       at::Tensor const& v, double scale, std::optional<at::Tensor> out_opt,
                                       std::optional<at::Tensor> lse_opt) {
  auto const& variants = variant_list();
  TORCH_CHECK(variant >= 0 && variant < int64_t(variants.size()), "unknown flashcore variant id ", num(variant));
  VariantInfo const& info = variants[variant];
  check_operand(q, "query", info, q);
  check_operand(k, "key", info, q);
  check_operand(v, "value", info, q);
  check_arch(q.device().index());
  TORCH_CHECK_VALUE(std::isfinite(scale) && std::abs(scale) <= double(FLT_MAX),
                    "scale must be a finite float32 value, got ", num(scale));
  int64_t const B = q.size(0), H = q.size(1), Sq = q.size(2), Sk = k.size(2);
  TORCH_CHECK_VALUE(k.size(0) == B && v.size(0) == B && k.size(1) == H && v.size(1) == H && v.size(2) == Sk,
              "key/value must be (", num(B), ", ", num(H), ", seqlen_k, ", num(int64_t(info.head_dim)), ")");
  c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out, lse;
  if (out_opt.has_value()) {
    out = *out_opt;
    check_operand(out, "out", info, q);
    TORCH_CHECK_VALUE(out.size(0) == B && out.size(1) == H && out.size(2) == Sq, "out must be (", num(B), ", ", num(H), ", ",
                      num(Sq), ", ", num(int64_t(info.head_dim)), ")");
    TORCH_CHECK_VALUE(at::has_internal_overlap(out) != at::MemOverlap::Yes,
                      "out has elements that share memory (an expanded, stride-0 view); pass a dense tensor");
    check_no_overlap(out, "out", q, "query");
    check_no_overlap(out, "out", k, "key");
    check_no_overlap(out, "out", v, "value");
  } else {
    out = at::empty({B, H, Sq, info.head_dim}, q.options());
  }
  if (lse_opt.has_value()) {
    lse = *lse_opt;
    TORCH_CHECK_VALUE(lse.is_cuda() && lse.device() == q.device() && lse.scalar_type() == at::kFloat &&
                    lse.is_contiguous() && lse.dim() == 3 && lse.size(0) == B && lse.size(1) == H && lse.size(2) == Sq,
                "lse must be a contiguous float32 CUDA tensor of shape (", num(B), ", ", num(H), ", ", num(Sq), ") on ",
                q.device().str());
    check_no_overlap(lse, "lse", q, "query");
    check_no_overlap(lse, "lse", k, "key");
    check_no_overlap(lse, "lse", v, "value");
    check_no_overlap(lse, "lse", out, "out");
  } else {
    lse = at::empty({B, H, Sq}, q.options().dtype(at::kFloat));
  }
  // Empty results (like torch SDPA): nothing to compute, nothing launched.
  if (B == 0 || H == 0 || Sq == 0) return {out, lse};
  TORCH_CHECK_VALUE(Sq <= kMaxSeqlen && Sk <= kMaxSeqlen, "seqlen_q = ", num(Sq), ", seqlen_k = ", num(Sk),
                    ": flashcore kernels index sequences with 32-bit ints, at most ", num(kMaxSeqlen), " (2^30) rows");
  TORCH_CHECK_VALUE(B <= INT_MAX / H, "batch * heads = ", num(B), " * ", num(H),
                    " exceeds the kernels' 32-bit range (at most ", num(int64_t(INT_MAX)), ")");
  // No keys (like torch SDPA's math definition): every output row is an empty sum, 0, and the
  // logsumexp of no scores is -inf. Filled on the current stream, nothing launched of ours.
  if (Sk == 0) {
    out.zero_();
    lse.fill_(-INFINITY);
    return {out, lse};
  }

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
  double const scale_log2 = scale * 1.4426950408889634;
  p.scale = float(scale);
  p.scale_log2 = float(scale_log2);
  // See FwdParams: the sign goes into Q, a zero or subnormal magnitude becomes FLT_MIN (same fp32 result).
  p.scale_log2_abs = std::max(float(std::abs(scale_log2)), FLT_MIN);
  p.negate_q = scale < 0 ? 1 : 0;
  cudaError_t err = info.run(p, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "flashcore kernel ", info.name, " failed to launch: ", cudaGetErrorString(err));
  return {out, lse};
}
}  // namespace

void register_variant(VariantInfo const& info) { variant_list().push_back(info); }

}  // namespace flashcore

TORCH_LIBRARY(flashcore, m) {
  m.def("variants() -> str[]", &flashcore::list_variants);
  // "" when a GPU of compute capability (major, minor) runs the kernels, else the error message.
  m.def("arch_error(int major, int minor) -> str", &flashcore::arch_error);
  // out/lse: optional preallocated results (written in place; returned as the results).
  m.def("fwd(int variant, Tensor q, Tensor k, Tensor v, float scale, Tensor? out=None, Tensor? lse=None)"
        " -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flashcore, CUDA, m) { m.impl("fwd", &flashcore::fwd); }
