// The one translation unit that sees torch: registers the flashcore ops and collects the
// variants that the generated kernel objects register from their static initializers.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "flashcore/api.h"

namespace flashcore {
namespace {
// A compile target, "sm_90a" -> {9, 0, arch_specific}: a cubin for sm_XY runs on capability X.Y'
// with Y' >= Y, an arch-specific one ("a") on exactly X.Y. Mirrors flashcore_codegen.arch.
struct Target {
  int major = 0, minor = 0;
  bool arch_specific = false;
  bool valid = false;
};

Target parse_target(std::string const& arch) {
  Target t;
  size_t const n = arch.size();
  bool const specific = n > 0 && arch[n - 1] == 'a';
  std::string const digits = arch.substr(std::min<size_t>(3, n), n - 3 - (specific ? 1 : 0));
  if (arch.rfind("sm_", 0) != 0 || digits.size() < 2 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return t;
  t.major = std::stoi(digits.substr(0, digits.size() - 1));
  t.minor = digits.back() - '0';
  t.arch_specific = specific;
  t.valid = true;
  return t;
}

bool runs_on(Target const& t, int64_t min_cc, int64_t major, int64_t minor) {
  if (!t.valid || major * 10 + minor < min_cc || major != t.major) return false;
  return t.arch_specific ? minor == t.minor : minor >= t.minor;
}

struct Variant {
  VariantInfo info;
  Target target;  // info.arch parsed once, at registration
};

std::vector<Variant>& variant_list() {
  static std::vector<Variant> variants;  // filled during library load, read-only after
  return variants;
}

// "name:source_hash:arch:min_cc" per variant, in id order (the id is the index).
std::vector<std::string> list_variants() {
  std::vector<std::string> out;
  for (auto const& v : variant_list())
    out.push_back(std::string(v.info.name) + ":" + v.info.source_hash + ":" + v.info.arch + ":" +
                  std::to_string(v.info.min_cc));
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

// A variant runs only on the GPUs its target and code allow: any other must fail with a clear
// message, not a launch error. "" when a GPU of capability (major, minor) runs code compiled for
// `arch` that needs `min_cc` (major * 10 + minor). Exposed as flashcore::arch_error for tests.
std::string arch_error(std::string arch, int64_t min_cc, int64_t major, int64_t minor) {
  Target const t = parse_target(arch);
  if (runs_on(t, min_cc, major, minor)) return "";
  std::string const device = "sm_" + std::to_string(major) + std::to_string(minor);
  std::string built = arch;
  if (!t.valid) {
    built += " (not a compile target this flashcore knows)";
  } else if (t.arch_specific) {
    built += " (compute capability " + std::to_string(t.major) + "." + std::to_string(t.minor) + " only" +
             (t.major == 9 && t.minor == 0 ? ": H100/H200)" : ")");
  } else {
    built += " (compute capability " + std::to_string(t.major) + "." + std::to_string(t.minor) + " to " +
             std::to_string(t.major) + ".9)";
  }
  if (t.valid && min_cc > t.major * 10 + t.minor)
    built += " with code that needs compute capability " + std::to_string(min_cc / 10) + "." + std::to_string(min_cc % 10);
  return "built for " + built + ", this GPU is " + device +
         ": run it on a GPU it was built for (select one with CUDA_VISIBLE_DEVICES or torch.cuda.set_device),"
         " or build variants for " + device;
}

// What the binding needs to know of a device, read once per device index (then two relaxed
// atomic loads per call, never a driver query): its capability for the arch check and its SM
// count for FwdParams::num_sms.
constexpr int kMaxDevices = 64;
std::atomic<int> g_device_cc[kMaxDevices];   // major * 10 + minor; 0 = not read yet (static storage: zeroed)
std::atomic<int> g_device_sms[kMaxDevices];

// Whether sm90 kernels launch as programmatic dependents (FwdParams::programmatic_launch): on by
// default; set_programmatic_launch switches it for the process (A/B timing, a profiler that
// mishandles it).
std::atomic<bool> g_programmatic_launch{true};

bool set_programmatic_launch(bool enabled) { return g_programmatic_launch.exchange(enabled); }

struct DeviceFacts {
  int major, minor, num_sms;
};

DeviceFacts device_facts(c10::DeviceIndex index) {
  bool const cached = index >= 0 && index < kMaxDevices;
  if (cached) {
    int const cc = g_device_cc[index].load(std::memory_order_acquire);
    if (cc != 0) return {cc / 10, cc % 10, g_device_sms[index].load(std::memory_order_relaxed)};
  }
  int major = 0, minor = 0, sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, index));
  if (cached) {
    g_device_sms[index].store(sms, std::memory_order_relaxed);  // before cc: a reader that sees cc sees sms
    g_device_cc[index].store(major * 10 + minor, std::memory_order_release);
  }
  return {major, minor, sms};
}

void check_arch(Variant const& v, c10::DeviceIndex index, DeviceFacts const& dev) {
  if (runs_on(v.target, v.info.min_cc, dev.major, dev.minor)) return;
  TORCH_CHECK(false, "flashcore variant ", v.info.name, " is ",
              arch_error(v.info.arch, v.info.min_cc, dev.major, dev.minor), " (device cuda:", num(int64_t(index)), ")");
}

// Device scratch of `bytes` bytes, or an undefined tensor when 0. From torch's caching allocator
// (no cudaMalloc per call); freed when the tensor goes, which is safe on the current stream, the
// one it is used on. Uninitialised: a variant's run zeroes what must start at zero (a counter),
// so a call never clears megabytes of partial results it overwrites anyway. Exposed as
// flashcore::workspace for tests.
at::Tensor variant_workspace(int64_t bytes, at::Device device) {
  if (bytes <= 0) return at::Tensor();
  return at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(device));
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

// An operand as the kernels see it, (batch, heads, rows, head_dim), read off the tensor without a
// view op: packed sequences come as (total, heads, D) tensors, and the unsqueeze/transpose views
// that made them 4-D (a dozen per call, ~1 us of host time each) were most of a packed call's
// host time (benchmarks/NOTES.md).
struct View4 {
  at::Tensor const& t;
  std::array<int64_t, 4> size, stride;
  int64_t offset = 0;  // elements from t's data pointer to the view's first (a key range's first row)
  void* data() const { return static_cast<char*>(t.data_ptr()) + offset * int64_t(t.element_size()); }
};
View4 as_view4(at::Tensor const& t, char const* what, bool packed3) {
  if (packed3) {  // (total, heads, D) as (1, heads, total, D); the lone batch never steps
    TORCH_CHECK_VALUE(t.dim() == 3, what, " must be (total_tokens, heads, head_dim) like query, got ", num(t.dim()),
                      " dims");
    return {t, {1, t.size(1), t.size(0), t.size(2)}, {t.size(0) * t.stride(0), t.stride(1), t.stride(0), t.stride(2)}};
  }
  TORCH_CHECK_VALUE(t.dim() == 4, what, " must be (batch, heads, seqlen, head_dim), got ", num(t.dim()), " dims");
  return {t, {t.size(0), t.size(1), t.size(2), t.size(3)}, {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}};
}

// TORCH_CHECK_VALUE / _TYPE surface in Python as ValueError / TypeError.
void check_operand(View4 const& o, char const* what, VariantInfo const& info, at::Tensor const& q) {
  at::Tensor const& t = o.t;
  TORCH_CHECK_VALUE(t.is_cuda(), what, " must be a CUDA tensor, got one on ", t.device().str());
  TORCH_CHECK_VALUE(t.device() == q.device(), what, " is on ", t.device().str(), " but query is on ", q.device().str(),
                    ": all tensors must be on one GPU");
  TORCH_CHECK_TYPE(t.scalar_type() == scalar_type(info.dtype), what, " has dtype ", t.scalar_type(),
                   " but variant ", info.name, " computes ", scalar_type(info.dtype));
  // A variant that pads the head dim runs any multiple of 8 up to its own (VariantInfo).
  int64_t const d = o.size[3];
  bool const dim_ok = info.pads_head_dim ? d >= 8 && d <= info.head_dim && d % 8 == 0 : d == info.head_dim;
  TORCH_CHECK_VALUE(dim_ok, what, " head_dim ", num(d), " but variant ", info.name, " needs ",
                    info.pads_head_dim ? "a multiple of 8 up to " : "", num(int64_t(info.head_dim)));
  TORCH_CHECK_VALUE(o.stride[3] == 1, what, " must have a contiguous last dimension, got strides ", dims(t.strides()));
  // Alignment is not checked here: what a variant needs is its can_implement's call (fwd).
}

// The (batch, head, row) strides the kernels get. A dimension of extent 1 is never stepped along,
// so torch leaves its stride free (a view may carry any value there); it gets the stride a packed
// tensor would have, so that alignment rules (vector copies', TMA's) judge only strides the kernels
// use, as Python's Problem.aligned16 does.
std::array<int64_t, 3> kernel_strides(View4 const& t) {
  std::array<int64_t, 3> s{t.stride[0], t.stride[1], t.stride[2]};
  int64_t packed = t.size[3];  // the last dimension is contiguous
  for (int d = 2; d >= 0; --d) {
    if (t.size[d] == 1) s[d] = packed;
    packed = s[d] * t.size[d];
  }
  return s;
}

// "query data_ptr % 16 = 2, strides [..]": the layout facts behind a can_implement refusal.
std::string layout_facts(at::Tensor const& t, char const* what) {
  return std::string(what) + " data_ptr % 16 = " + std::to_string(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16) +
         ", strides " + dims(t.strides());
}

// packed3: packed sequences as their own (total, heads, D) tensors (out likewise, lse (heads,
// total)), read as (1, heads, total, D) operands (View4), no view made.
std::tuple<at::Tensor, at::Tensor> fwd_impl(int64_t variant, View4 const& q, View4 const& k, View4 const& v,
                                            double scale, std::optional<at::Tensor> out_opt,
                                            std::optional<at::Tensor> lse_opt, int64_t causal_offset,
                                            std::optional<int64_t> left_offset, double softcap,
                                            std::optional<at::Tensor> cu_seqlens_q,
                                            std::optional<at::Tensor> cu_seqlens_k, int64_t max_seqlen_q,
                                            int64_t max_seqlen_k, bool bottom_right, bool packed3,
                                            bool pack_gqa = false, bool lse_unused = false) {
  auto const& variants = variant_list();
  TORCH_CHECK(variant >= 0 && variant < int64_t(variants.size()), "unknown flashcore variant id ", num(variant));
  VariantInfo const& info = variants[variant].info;
  at::Tensor const& qt = q.t;
  check_operand(q, "query", info, qt);
  check_operand(k, "key", info, qt);
  check_operand(v, "value", info, qt);
  DeviceFacts const dev = device_facts(qt.device().index());
  check_arch(variants[variant], qt.device().index(), dev);
  TORCH_CHECK_VALUE(std::isfinite(scale) && std::abs(scale) <= double(FLT_MAX),
                    "scale must be a finite float32 value, got ", num(scale));
  TORCH_CHECK_VALUE(std::isfinite(softcap) && softcap >= 0 && softcap <= double(FLT_MAX),
                    "softcap must be 0 (off) or a positive finite float32 value, got ", num(softcap));
  TORCH_CHECK_VALUE(!left_offset.has_value() || info.causal, "flashcore variant ", info.name,
                    " masks nothing: a sliding window needs a masked (causal) variant");
  // Packed sequences: q/k/v/out are (1, heads, total rows, D) views of (total, heads, D) tensors.
  bool const packed = cu_seqlens_q.has_value();
  TORCH_CHECK_VALUE(packed == cu_seqlens_k.has_value(), "pass both cu_seqlens_q and cu_seqlens_k, or neither");
  int64_t num_seqs = 0;
  if (packed) {
    for (auto const* cu : {&*cu_seqlens_q, &*cu_seqlens_k}) {
      TORCH_CHECK_VALUE(cu->is_cuda() && cu->device() == qt.device() && cu->scalar_type() == at::kInt && cu->dim() == 1 &&
                            cu->is_contiguous() && cu->numel() >= 1,
                        "cu_seqlens must be contiguous 1-D int32 tensors on ", qt.device().str(),
                        " (batch + 1 offsets starting at 0)");
    }
    TORCH_CHECK_VALUE(cu_seqlens_q->numel() == cu_seqlens_k->numel(), "cu_seqlens_q has ", num(cu_seqlens_q->numel()),
                      " entries and cu_seqlens_k ", num(cu_seqlens_k->numel()), ": one offset per sequence plus one");
    TORCH_CHECK_VALUE(q.size[0] == 1 && k.size[0] == 1, "packed sequences come as one batch of total rows");
    TORCH_CHECK_VALUE(max_seqlen_q >= 0 && max_seqlen_k >= 0 && max_seqlen_q <= q.size[2] && max_seqlen_k <= k.size[2],
                      "max_seqlen_q = ", num(max_seqlen_q), ", max_seqlen_k = ", num(max_seqlen_k),
                      " must be within the packed rows (", num(q.size[2]), ", ", num(k.size[2]), ")");
    num_seqs = cu_seqlens_q->numel() - 1;
  }
  int64_t const B = q.size[0], H = q.size[1], Sq = q.size[2], Hk = k.size[1], Sk = k.size[2];
  // V (and so out) may have a head dim of its own; a variant that does not pad needs its own for all.
  int64_t const Dv = v.size[3];
  TORCH_CHECK_VALUE(k.size[3] == q.size[3], "key head_dim ", num(k.size[3]), " must equal query head_dim ",
                    num(q.size[3]));
  TORCH_CHECK_VALUE(v.size[0] == k.size[0] && v.size[1] == k.size[1] && v.size[2] == k.size[2], "value shape ",
                    dims(v.t.sizes()), " must match key shape ", dims(k.t.sizes()),
                    packed3 ? " but for the head dim (value is (total_k, heads_k, head_dim_v))"
                            : " but for the head dim (value is (batch, heads_k, seqlen_k, head_dim_v))");
  TORCH_CHECK_VALUE(k.size[0] == B, "key/value batch ", num(k.size[0]), " must equal query batch ", num(B),
                    " (key/value are (batch, heads_k, seqlen_k, head_dim))");
  // Grouped-query attention: query head h reads key/value head h / (H / Hk); Hk = H is plain MHA.
  TORCH_CHECK_VALUE(Hk == H || (Hk > 0 && H % Hk == 0), "query has ", num(H), " heads and key/value ", num(Hk),
                    ": the query head count must be a multiple of the key/value head count (grouped-query attention)");
  // launch_chunked cuts the heads at multiples of the group, at most kMaxGridYZ heads a launch.
  TORCH_CHECK_VALUE(Hk == 0 || H / Hk <= kMaxGridYZ, "query has ", num(H), " heads per key/value head, at most ",
                    num(int64_t(kMaxGridYZ)), " are supported (one launch's grid)");
  c10::cuda::CUDAGuard guard(qt.device());
  // Results in the caller's layout: (B, H, Sq, Dv) and (B, H, Sq); packed3: (total, H, Dv) and
  // (H, total), the same memory as (1, H, total, ..).
  at::Tensor const out = out_opt.has_value() ? *out_opt
                         : packed3            ? at::empty({Sq, H, Dv}, qt.options())
                                              : at::empty({B, H, Sq, Dv}, qt.options());
  View4 const ov = as_view4(out, "out", packed3);
  at::Tensor lse;
  if (out_opt.has_value()) {
    check_operand(ov, "out", info, qt);
    TORCH_CHECK_VALUE(ov.size == (std::array<int64_t, 4>{B, H, Sq, Dv}), "out must be ",
                      packed3 ? "(" + num(Sq) + ", " + num(H) + ", " + num(Dv) + ")"
                              : "(" + num(B) + ", " + num(H) + ", " + num(Sq) + ", " + num(Dv) + ")");
    TORCH_CHECK_VALUE(at::has_internal_overlap(out) != at::MemOverlap::Yes,
                      "out has elements that share memory (an expanded, stride-0 view); pass a dense tensor");
    check_no_overlap(out, "out", qt, "query");
    check_no_overlap(out, "out", k.t, "key");
    check_no_overlap(out, "out", v.t, "value");
  }
  if (lse_opt.has_value()) {
    lse = *lse_opt;
    bool const shape_ok = packed3 ? lse.dim() == 2 && lse.size(0) == H && lse.size(1) == Sq
                                  : lse.dim() == 3 && lse.size(0) == B && lse.size(1) == H && lse.size(2) == Sq;
    TORCH_CHECK_VALUE(lse.is_cuda() && lse.device() == qt.device() && lse.scalar_type() == at::kFloat &&
                          lse.is_contiguous() && shape_ok,
                      "lse must be a contiguous float32 CUDA tensor of shape ",
                      packed3 ? "(" + num(H) + ", " + num(Sq) + ") (heads, total_tokens)"
                              : "(" + num(B) + ", " + num(H) + ", " + num(Sq) + ")",
                      " on ", qt.device().str());
    check_no_overlap(lse, "lse", qt, "query");
    check_no_overlap(lse, "lse", k.t, "key");
    check_no_overlap(lse, "lse", v.t, "value");
    check_no_overlap(lse, "lse", out, "out");
  } else {
    lse = packed3 ? at::empty({H, Sq}, qt.options().dtype(at::kFloat)) : at::empty({B, H, Sq}, qt.options().dtype(at::kFloat));
  }
  // Empty results (like torch SDPA): nothing to compute, nothing launched.
  if (B == 0 || H == 0 || Sq == 0 || (packed && (num_seqs == 0 || max_seqlen_q == 0))) return {out, lse};
  TORCH_CHECK_VALUE(Sq <= kMaxSeqlen && Sk <= kMaxSeqlen, "seqlen_q = ", num(Sq), ", seqlen_k = ", num(Sk),
                    ": flashcore kernels index sequences with 32-bit ints, at most ", num(kMaxSeqlen), " (2^30) rows");
  TORCH_CHECK_VALUE(B <= INT_MAX / H, "batch * heads = ", num(B), " * ", num(H),
                    " exceeds the kernels' 32-bit range (at most ", num(int64_t(INT_MAX)), ")");
  // No keys (like torch SDPA's math definition): every output row is an empty sum, 0, and the
  // logsumexp of no scores is -inf. Filled on the current stream, nothing launched of ours.
  if (Sk == 0 || (packed && max_seqlen_k == 0)) {
    out.zero_();
    lse.fill_(-INFINITY);
    return {out, lse};
  }

  // GQA packing (fwd_pack_gqa): one query row per head, so the G = H / Hk query heads of a group
  // become the G rows of one (batch, key/value head) problem: (B, H, 1, D) read as (B, Hk, G, D)
  // with the head stride as the row stride (out likewise; the LSE's (B, H, 1) is (B, Hk, G)
  // row-major already). A tile then holds a group's rows instead of 1 row and 63 of padding, and
  // each K/V head is read by one CTA (or cluster) instead of G. The kernels see plain MHA.
  TORCH_CHECK_VALUE(!pack_gqa || (!packed && !info.causal && Sq == 1 && Hk > 0 && H % Hk == 0),
                    "packing a GQA group's query heads into rows takes one query row, no packed sequences and an "
                    "unmasked variant (the mask becomes a key range)");
  int64_t const group = pack_gqa ? H / Hk : 1;
  auto rows_of_group = [&](View4 const& x) {
    return View4{x.t, {x.size[0], Hk, group, x.size[3]}, {x.stride[0], group * x.stride[1], x.stride[1], 1}, x.offset};
  };
  View4 const qp = pack_gqa ? rows_of_group(q) : q;
  View4 const op = pack_gqa ? rows_of_group(ov) : ov;
  int64_t const problem_heads = pack_gqa ? Hk : H, problem_rows = pack_gqa ? group : Sq;

  FwdParams p{};
  p.q = qp.data();
  p.k = k.data();
  p.v = v.data();
  p.o = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  std::array<int64_t, 3> const qs = kernel_strides(qp), ks = kernel_strides(k), vs = kernel_strides(v),
                                os = kernel_strides(op);
  p.q_batch_stride = qs[0], p.q_head_stride = qs[1], p.q_row_stride = qs[2];
  p.k_batch_stride = ks[0], p.k_head_stride = ks[1], p.k_row_stride = ks[2];
  p.v_batch_stride = vs[0], p.v_head_stride = vs[1], p.v_row_stride = vs[2];
  p.o_batch_stride = os[0], p.o_head_stride = os[1], p.o_row_stride = os[2];
  if (packed) p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = 0;
  p.batch = int(B), p.heads = int(problem_heads), p.seqlen_q = int(problem_rows), p.seqlen_k = int(Sk);
  if (packed) {
    TORCH_CHECK_VALUE(num_seqs <= INT_MAX / H, "sequences * heads exceeds the kernels' 32-bit range");
    // Sequence b's rows come from cu_seqlens; batch strides are never stepped (SeqSpan in api.h).
    p.batch = int(num_seqs), p.seqlen_q = int(max_seqlen_q), p.seqlen_k = int(max_seqlen_k);
    p.total_q = int(Sq), p.total_k = int(Sk);
    p.cu_seqlens_q = cu_seqlens_q->data_ptr<int>();
    p.cu_seqlens_k = cu_seqlens_k->data_ptr<int>();
    p.bottom_right = bottom_right ? 1 : 0;
  }
  p.heads_k = int(Hk);  // = heads for plain multi-head calls
  p.head_dim = int(q.size[3]);
  p.head_dim_v = int(Dv);
  // Masked variants: row r sees key c iff r + left_offset <= c <= r + causal_offset (a window's
  // two diagonals; no left edge = -Sq, below every row's first key). Clamped to [-Sq, Sk].
  // Packed: relative to each sequence's alignment, which the kernels add and clamp (seq_span);
  // beyond +-2^30 nothing changes (no sequence is longer), inside it the sums stay in int range.
  int64_t const lo = packed ? -kMaxSeqlen : -Sq, hi = packed ? kMaxSeqlen : Sk;
  p.causal_offset = info.causal ? int(std::min(std::max(causal_offset, lo), hi)) : 0;  // 0 = top-left, torch's is_causal
  p.left_offset = info.causal && left_offset.has_value() ? int(std::min(std::max(*left_offset, lo), hi)) : int(lo);
  // Softcap: softmax(cap * tanh(scale * s / cap)): the kernels apply tanh(s * softcap_scale) and
  // then run their softmax with the cap as the scale (positive: no sign folded into Q).
  double const softmax_scale = softcap > 0 ? softcap : scale;
  p.softcap_scale = softcap > 0 ? float(scale / softcap) : 0.f;
  double const scale_log2 = softmax_scale * 1.4426950408889634;
  p.scale = float(softmax_scale);
  p.scale_log2 = float(scale_log2);
  // See FwdParams: the sign goes into Q, a zero or subnormal magnitude becomes FLT_MIN (same fp32 result).
  p.scale_log2_abs = std::max(float(std::abs(scale_log2)), FLT_MIN);
  p.negate_q = softmax_scale < 0 ? 1 : 0;
  p.num_sms = dev.num_sms;
  p.programmatic_launch = g_programmatic_launch.load(std::memory_order_relaxed) ? 1 : 0;
  p.lse_unused = lse_unused ? 1 : 0;  // the caller discards lse (FwdParams::lse_unused)
  // Dispatch skips variants that cannot run a call (KernelConfig.can_implement); a call that
  // names one anyway (runtime.run, a layout Python did not see) gets the variant's reason.
  if (info.can_implement != nullptr) {
    char const* why = info.can_implement(p);
    TORCH_CHECK_VALUE(why == nullptr, "flashcore variant ", info.name, " cannot run this call: ", why, " (",
                      layout_facts(qt, "query"), "; ", layout_facts(k.t, "key"), "; ", layout_facts(v.t, "value"), "; ",
                      layout_facts(out, "out"), "); pass contiguous tensors, or let flashcore dispatch pick a variant");
  }
  cudaStream_t const stream = c10::cuda::getCurrentCUDAStream();
  // Kept alive until after the launch; its memory is reused only by later work on this stream.
  at::Tensor const workspace =
      variant_workspace(info.workspace_bytes != nullptr ? int64_t(info.workspace_bytes(p)) : 0, qt.device());
  p.workspace = workspace.defined() ? workspace.data_ptr() : nullptr;
  cudaError_t err = info.run(p, stream);
  TORCH_CHECK(err == cudaSuccess, "flashcore kernel ", info.name, " failed to launch: ", cudaGetErrorString(err));
  return {out, lse};
}

// fwd: packed sequences may also come as their own (total, heads, D) tensors (out likewise, lse
// (heads, total)).
std::tuple<at::Tensor, at::Tensor> fwd(int64_t variant, at::Tensor const& q, at::Tensor const& k, at::Tensor const& v,
                                       double scale, std::optional<at::Tensor> out_opt, std::optional<at::Tensor> lse_opt,
                                       int64_t causal_offset, std::optional<int64_t> left_offset, double softcap,
                                       std::optional<at::Tensor> cu_seqlens_q, std::optional<at::Tensor> cu_seqlens_k,
                                       int64_t max_seqlen_q, int64_t max_seqlen_k, bool bottom_right, bool lse_unused) {
  bool const packed3 = cu_seqlens_q.has_value() && q.dim() == 3;
  return fwd_impl(variant, as_view4(q, "query", packed3), as_view4(k, "key", packed3), as_view4(v, "value", packed3),
                  scale, out_opt, lse_opt, causal_offset, left_offset, softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                  max_seqlen_k, bottom_right, packed3, false, lse_unused);
}

// The eager hot path (attention() without a window, softcap, preallocated results or packed
// sequences): fwd with seven arguments, which torch's dispatcher parses in about half the time of
// fwd's sixteen (benchmarks/NOTES.md, issue 8 host overhead: six against fifteen then).
std::tuple<at::Tensor, at::Tensor> fwd_dense(int64_t variant, at::Tensor const& q, at::Tensor const& k,
                                             at::Tensor const& v, double scale, int64_t causal_offset, bool lse_unused) {
  return fwd_impl(variant, as_view4(q, "query", false), as_view4(k, "key", false), as_view4(v, "value", false), scale,
                  std::nullopt, std::nullopt, causal_offset, std::nullopt, 0.0, std::nullopt, std::nullopt, 0, 0, false,
                  false, false, lse_unused);
}

// Decoding with grouped-query attention (one query row, H = G * Hk heads): the G query heads of a
// group packed into the rows of one tile (fwd_impl's pack_gqa), attending to keys [key_begin,
// key_end) of k/v (the key range a masked row sees; [0, Sk) unmasked) on an unmasked variant.
std::tuple<at::Tensor, at::Tensor> fwd_pack_gqa(int64_t variant, at::Tensor const& q, at::Tensor const& k,
                                                at::Tensor const& v, double scale, int64_t key_begin, int64_t key_end,
                                                double softcap) {
  View4 kv = as_view4(k, "key", false), vv = as_view4(v, "value", false);
  TORCH_CHECK_VALUE(0 <= key_begin && key_begin < key_end && key_end <= kv.size[2], "key range [", num(key_begin), ", ",
                    num(key_end), ") is not a non-empty range of the ", num(kv.size[2]), " keys");
  for (View4* x : {&kv, &vv}) {
    x->offset = key_begin * x->stride[2];
    x->size[2] = key_end - key_begin;
  }
  return fwd_impl(variant, as_view4(q, "query", false), kv, vv, scale, std::nullopt, std::nullopt, 0, std::nullopt,
                  softcap, std::nullopt, std::nullopt, 0, 0, false, false, /*pack_gqa=*/true);
}

// ---- The eager hot path's dispatch cache (issue 8: dispatch decided once per problem key and
// cached where the lookup costs nothing). Python decides a shape once (registry.py, api._dispatch)
// and records the decision here (remember_dispatch); later calls of that shape go from fwd_cached
// straight to fwd_dense / fwd_pack_gqa, with no Python between the call and the launch. The key
// holds what the decision and the Python checks a cached shape skips depend on (api._shape_key's
// fields, plus the device); fwd_impl still checks every call in full.
enum DispatchMask : int8_t { kNoMask = 0, kTopLeft = 1, kBottomRight = 2 };

struct DispatchKey {
  int64_t b = 0, h = 0, sq = 0, d = 0, hk = 0, sk = 0, dv = 0;
  int32_t device = 0;
  int8_t dtype = 0, mask = 0;
  bool aligned = false;
  bool operator==(DispatchKey const& o) const {
    return b == o.b && h == o.h && sq == o.sq && d == o.d && hk == o.hk && sk == o.sk && dv == o.dv &&
           device == o.device && dtype == o.dtype && mask == o.mask && aligned == o.aligned;
  }
};

struct DispatchKeyHash {
  size_t operator()(DispatchKey const& k) const {
    size_t h = std::hash<int64_t>{}(k.b);
    for (int64_t x : {k.h, k.sq, k.d, k.hk, k.sk, k.dv, int64_t(k.device), int64_t(k.dtype), int64_t(k.mask),
                      int64_t(k.aligned)})
      h = h * 1000003u ^ std::hash<int64_t>{}(x);
    return h;
  }
};

// A decision as api._dispatch makes it: a variant id, or for decoding with GQA the variant that
// runs the group's query heads packed into rows over keys [key_begin, key_end).
struct DispatchDecision {
  int64_t variant = -1;
  bool pack_gqa = false;
  int64_t key_begin = 0, key_end = 0;
};

std::shared_mutex g_dispatch_mutex;
std::unordered_map<DispatchKey, DispatchDecision, DispatchKeyHash> g_dispatch;
// Shapes that never repeat (a KV cache growing each decoding step: a new Sk per step, shared by the
// layers of that step) would grow the cache without end; past this many it starts over.
constexpr size_t kMaxDispatchShapes = size_t(1) << 16;

// Problem.aligned16 as api._aligned16 computes it: 16-byte aligned data pointer, and strides of
// the dimensions of extent > 1 (but the contiguous last) multiples of 16 bytes.
bool aligned16(at::Tensor const& t) {
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15) return false;
  for (int64_t d = 0; d < 3; ++d)
    if (t.size(d) > 1 && (t.stride(d) * int64_t(t.element_size())) % 16 != 0) return false;
  return true;
}

// The key of a call, or nullopt for a call the cache never serves (the Python path then reports
// what is wrong with it, or runs it): CUDA tensors of rank 4 on one device, fp16/bf16 alike, last
// dims contiguous, shapes that fit together as (B, H, Sq, D), (B, Hk, Sk, D), (B, Hk, Sk, Dv),
// something to compute, a known mask.
std::optional<DispatchKey> dispatch_key(at::Tensor const& q, at::Tensor const& k, at::Tensor const& v, int64_t mask) {
  if (mask < kNoMask || mask > kBottomRight) return std::nullopt;
  for (at::Tensor const* t : {&q, &k, &v})
    if (!t->defined() || !t->is_cuda() || t->dim() != 4 || t->stride(3) != 1) return std::nullopt;
  at::ScalarType const dtype = q.scalar_type();
  if ((dtype != at::kHalf && dtype != at::kBFloat16) || k.scalar_type() != dtype || v.scalar_type() != dtype)
    return std::nullopt;
  if (k.device() != q.device() || v.device() != q.device()) return std::nullopt;
  DispatchKey key;
  key.b = q.size(0), key.h = q.size(1), key.sq = q.size(2), key.d = q.size(3);
  key.hk = k.size(1), key.sk = k.size(2), key.dv = v.size(3);
  if (k.size(0) != key.b || k.size(3) != key.d || v.size(0) != key.b || v.size(1) != key.hk || v.size(2) != key.sk)
    return std::nullopt;
  if (key.b == 0 || key.h == 0 || key.sq == 0 || key.sk == 0) return std::nullopt;  // never cached: nothing to launch
  key.device = q.device().index();
  key.dtype = dtype == at::kHalf ? 0 : 1;
  key.mask = int8_t(mask);
  key.aligned = aligned16(q) && aligned16(k) && aligned16(v);
  return key;
}

// Records Python's decision for the shape of (q, k, v) under `mask` (DispatchMask); false when
// the cache never serves such a call.
bool remember_dispatch(at::Tensor const& q, at::Tensor const& k, at::Tensor const& v, int64_t mask, int64_t variant,
                       bool pack_gqa, int64_t key_begin, int64_t key_end) {
  std::optional<DispatchKey> const key = dispatch_key(q, k, v, mask);
  TORCH_CHECK_VALUE(variant >= 0 && variant < int64_t(variant_list().size()), "unknown flashcore variant id ",
                    num(variant));
  if (!key) return false;
  std::unique_lock lock(g_dispatch_mutex);
  if (g_dispatch.size() >= kMaxDispatchShapes) g_dispatch.clear();
  g_dispatch[*key] = DispatchDecision{variant, pack_gqa, key_begin, key_end};
  return true;
}

// Forgets every cached decision (after tuning: runtime.forget_decisions); returns how many.
int64_t forget_dispatch() {
  std::unique_lock lock(g_dispatch_mutex);
  int64_t const n = int64_t(g_dispatch.size());
  g_dispatch.clear();
  return n;
}

int64_t dispatched_shapes() {
  std::shared_lock lock(g_dispatch_mutex);
  return int64_t(g_dispatch.size());
}

// attention() / the SDPA drop-in for a shape decided before: (out, lse), or two undefined tensors
// (None in Python) when the cache does not serve the call: a shape not decided yet, inputs that
// need grad while grad mode is on, or different head counts where the caller forbids GQA
// (`gqa_ok`: the drop-in without enable_gqa takes Hk = H or 1 only). scale None: 1/sqrt(D),
// computed as Python's D ** -0.5 is.
std::tuple<at::Tensor, at::Tensor> fwd_cached(at::Tensor const& q, at::Tensor const& k, at::Tensor const& v,
                                              int64_t mask, std::optional<double> scale, bool gqa_ok,
                                              bool lse_unused) {
  std::optional<DispatchKey> const key = dispatch_key(q, k, v, mask);
  if (!key || (!gqa_ok && key->hk != key->h && key->hk != 1)) return {};
  if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) return {};
  DispatchDecision decision;
  {
    std::shared_lock lock(g_dispatch_mutex);
    auto const it = g_dispatch.find(*key);
    if (it == g_dispatch.end()) return {};
    decision = it->second;
  }
  double const s = scale.has_value() ? *scale : std::pow(double(key->d), -0.5);
  if (decision.pack_gqa) return fwd_pack_gqa(decision.variant, q, k, v, s, decision.key_begin, decision.key_end, 0.0);
  return fwd_dense(decision.variant, q, k, v, s, mask == kBottomRight ? key->sk - key->sq : 0, lse_unused);
}

// The test face of variant_workspace: `bytes` bytes on `like`'s device (an empty tensor for 0),
// allocated exactly as fwd allocates a variant's workspace.
at::Tensor workspace_op(at::Tensor const& like, int64_t bytes) {
  TORCH_CHECK_VALUE(like.is_cuda(), "workspace needs a CUDA tensor to name the device");
  c10::cuda::CUDAGuard guard(like.device());
  at::Tensor ws = variant_workspace(bytes, like.device());
  return ws.defined() ? ws : at::empty({0}, like.options().dtype(at::kByte));
}
}  // namespace

void register_variant(VariantInfo const& info) {
  variant_list().push_back(Variant{info, parse_target(info.arch != nullptr ? info.arch : "")});
}

}  // namespace flashcore

TORCH_LIBRARY(flashcore, m) {
  m.def("variants() -> str[]", &flashcore::list_variants);
  // "" when a GPU of compute capability (major, minor) runs a variant built for `arch` whose code
  // needs compute capability `min_cc` (major * 10 + minor), else why not and how to fix it.
  m.def("arch_error(str arch, int min_cc, int major, int minor) -> str", &flashcore::arch_error);
  // out/lse: optional preallocated results (written in place; returned as the results). k/v may have
  // fewer heads than q (a divisor: grouped-query attention). causal_offset (causal variants): query row
  // r sees key c iff c <= r + causal_offset; 0 = top-left (torch's is_causal), seqlen_k - seqlen_q =
  // bottom-right (FlashAttention's).
  // left_offset (masked variants, a sliding window's left edge): row r sees key c only if
  // c >= r + left_offset; None = no left edge. softcap: 0 = off, else softmax(cap * tanh(scale * s / cap)).
  // cu_seqlens_q/k (int32, batch + 1 offsets): packed variable-length sequences; q/k/v/out are then
  // (1, heads, total rows, D) views, max_seqlen_q/k the longest lengths, and the causal/window
  // offsets are relative to each sequence's alignment (bottom_right: + seqlen_k - seqlen_q).
  // lse_unused: the caller discards lse, which a kernel may then leave inexact (FwdParams::lse_unused).
  m.def("fwd(int variant, Tensor q, Tensor k, Tensor v, float scale, Tensor? out=None, Tensor? lse=None,"
        " int causal_offset=0, int? left_offset=None, float softcap=0.0, Tensor? cu_seqlens_q=None,"
        " Tensor? cu_seqlens_k=None, int max_seqlen_q=0, int max_seqlen_k=0, bool bottom_right=False,"
        " bool lse_unused=False) -> (Tensor, Tensor)");
  // fwd(variant, q, k, v, scale, causal_offset=causal_offset): new out and lse, no window, softcap or packing.
  m.def("fwd_dense(int variant, Tensor q, Tensor k, Tensor v, float scale, int causal_offset=0, bool lse_unused=False)"
        " -> (Tensor, Tensor)");
  // Decoding with GQA: one query row per head, the query heads of a key/value head's group computed as
  // the rows of one tile, over keys [key_begin, key_end) (an unmasked variant; the mask as a key range).
  m.def("fwd_pack_gqa(int variant, Tensor q, Tensor k, Tensor v, float scale, int key_begin, int key_end,"
        " float softcap=0.0) -> (Tensor, Tensor)");
  // The eager hot path: a shape's dispatch decision recorded by Python (remember_dispatch), then served
  // without Python (fwd_cached: None, None for a call it does not serve). mask: 0 none, 1 top-left,
  // 2 bottom-right; scale None = 1/sqrt(head_dim); gqa_ok False: only Hk = H or 1.
  m.def("fwd_cached(Tensor q, Tensor k, Tensor v, int mask, float? scale=None, bool gqa_ok=True, bool lse_unused=False)"
        " -> (Tensor, Tensor)");
  m.def("remember_dispatch(Tensor q, Tensor k, Tensor v, int mask, int variant, bool pack_gqa=False, int key_begin=0,"
        " int key_end=0) -> bool");
  m.def("forget_dispatch() -> int", &flashcore::forget_dispatch);
  m.def("dispatched_shapes() -> int", &flashcore::dispatched_shapes);
  // Launch sm90 kernels as programmatic dependents (on by default); returns the previous setting.
  m.def("set_programmatic_launch(bool enabled) -> bool", &flashcore::set_programmatic_launch);
  // A variant's workspace as fwd allocates it (uninitialised, torch's caching allocator), for tests.
  m.def("workspace(Tensor like, int bytes) -> Tensor");
}

TORCH_LIBRARY_IMPL(flashcore, CUDA, m) {
  m.impl("fwd", &flashcore::fwd);
  m.impl("fwd_dense", &flashcore::fwd_dense);
  m.impl("fwd_pack_gqa", &flashcore::fwd_pack_gqa);
  m.impl("fwd_cached", &flashcore::fwd_cached);
  m.impl("remember_dispatch", &flashcore::remember_dispatch);
  m.impl("workspace", &flashcore::workspace_op);
}

// fwd_cached decides about grad itself (inputs that need grad under grad mode: not served, so that
// Python raises its message); no autograd kernel in between.
TORCH_LIBRARY_IMPL(flashcore, Autograd, m) {
  m.impl("fwd_cached", torch::CppFunction::makeFallthrough());
}
