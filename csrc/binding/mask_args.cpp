#include "mask_args.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <cstdint>

namespace maskattn {

ScalarKind scalar_kind_of(const at::ScalarType& t, const char* op, const char* arg) {
  switch (t) {
    case at::kFloat: return ScalarKind::Float32;
    case at::kHalf: return ScalarKind::Float16;
    case at::kBFloat16: return ScalarKind::BFloat16;
    case at::kDouble: return ScalarKind::Float64;
    case at::kBool: return ScalarKind::Bool;
    default: TORCH_CHECK(false, op, ": ", arg, " has unsupported dtype ", t,
                         " (expected float32, float16, bfloat16 or float64)");
  }
}

// (batch,) integer lengths in [0, limit], as contiguous int64 on `device`.
static at::Tensor checked_lengths(const char* op, const char* arg, const at::Tensor& t,
                                  int64_t batch, int64_t limit, const at::Device& device) {
  TORCH_CHECK(!at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kBool &&
                  !at::isComplexType(t.scalar_type()),
              op, ": ", arg, " must be an integer tensor (int32 or int64), got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == batch, op, ": ", arg, " must have shape (", batch,
              ",), got ", t.sizes());
  TORCH_CHECK(t.device() == device, op, ": ", arg, " must be on ", device, ", got ", t.device());
  at::Tensor out = t.to(at::kLong).contiguous();
  if (batch > 0) {
    // one host sync: out-of-range lengths would read outside the tensors
    const auto [lo, hi] = out.aminmax();
    const int64_t lo_v = lo.item<int64_t>(), hi_v = hi.item<int64_t>();
    TORCH_CHECK(lo_v >= 0 && hi_v <= limit, op, ": ", arg, " values must lie in [0, ", limit,
                "], got min ", lo_v, " max ", hi_v);
  }
  return out;
}

// Segment ids (batch or 1, len) as contiguous int64 on `device`, and their per-chunk (min, max)
// bounds, computed with tensor ops on the device (no host sync).
static void prepare_segments(const char* op, const char* arg, const at::Tensor& t, int64_t batch, int64_t len,
                             const at::Device& device, PreparedMask& out, const int64_t** ids, int64_t* ids_stride_b,
                             const SegmentBounds** bounds, int64_t* bounds_stride_b) {
  TORCH_CHECK(!at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kBool &&
                  !at::isComplexType(t.scalar_type()),
              op, ": ", arg, " must be an integer tensor of document ids, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2 && (t.size(0) == batch || t.size(0) == 1) && t.size(1) == len, op, ": ", arg,
              " must have shape (", batch, ", ", len, "), got ", t.sizes());
  TORCH_CHECK(t.device().type() == device.type(), op, ": ", arg, " must be on ", device, ", got ", t.device());
  const at::Tensor seg = t.to(at::kLong).contiguous();
  const int64_t rows = seg.size(0), chunks = (len + kSegmentChunk - 1) / kSegmentChunk, pad = chunks * kSegmentChunk - len;
  // padding positions take the other bound's extreme, so they never widen a chunk's range
  const at::Tensor lo = at::constant_pad_nd(seg, {0, pad}, INT64_MAX).view({rows, chunks, kSegmentChunk}).amin(-1);
  const at::Tensor hi = at::constant_pad_nd(seg, {0, pad}, INT64_MIN).view({rows, chunks, kSegmentChunk}).amax(-1);
  const at::Tensor b = at::stack({lo, hi}, -1).contiguous();  // (rows, chunks, 2) = SegmentBounds
  out.keep_alive.push_back(seg);
  out.keep_alive.push_back(b);
  *ids = seg.data_ptr<int64_t>();
  *ids_stride_b = rows == 1 ? 0 : len;
  *bounds = reinterpret_cast<const SegmentBounds*>(b.data_ptr<int64_t>());
  *bounds_stride_b = rows == 1 ? 0 : chunks;
}

PreparedMask prepare_mask(const char* op, const MaskArgs& args, int64_t batch, int64_t heads,
                          int64_t q_len, int64_t k_len, at::IntArrayRef mask_shape,
                          const at::Device& device) {
  PreparedMask out;
  MaskSpec& s = out.spec;
  s.batch = batch;
  s.heads = heads;
  s.q_len = q_len;
  s.k_len = k_len;
  TORCH_CHECK(args.align == "top_left" || args.align == "bottom_right", op,
              ": align must be 'top_left' or 'bottom_right', got '", args.align, "'");
  s.bottom_right = args.align == "bottom_right";
  s.align_offset = args.align_offset;
  if (args.window_left) {
    TORCH_CHECK(*args.window_left >= 0, op, ": window left must be >= 0 or None, got ", *args.window_left);
    s.window_left = *args.window_left;
  }
  if (args.window_right) {
    TORCH_CHECK(*args.window_right >= 0, op, ": window right must be >= 0 or None, got ", *args.window_right);
    s.window_right = *args.window_right;
  }
  if (args.causal) s.window_right = 0;  // causal is right = 0, combined with any window by AND
  if (args.q_lengths) {
    out.keep_alive.push_back(checked_lengths(op, "q_lengths", *args.q_lengths, batch, q_len, device));
    s.q_lengths = out.keep_alive.back().data_ptr<int64_t>();
  }
  if (args.k_lengths) {
    out.keep_alive.push_back(checked_lengths(op, "k_lengths", *args.k_lengths, batch, k_len, device));
    s.k_lengths = out.keep_alive.back().data_ptr<int64_t>();
  }
  if (args.key_mask) {
    const at::Tensor& km = *args.key_mask;
    TORCH_CHECK(km.scalar_type() == at::kBool, op, ": key_mask must be a bool tensor (True = may attend), got ",
                km.scalar_type());
    TORCH_CHECK(km.dim() == 2 && (km.size(0) == batch || km.size(0) == 1) && km.size(1) == k_len, op,
                ": key_mask must have shape (", batch, ", ", k_len, "), got ", km.sizes());
    TORCH_CHECK(km.device() == device, op, ": key_mask must be on ", device, ", got ", km.device());
    s.key_mask = reinterpret_cast<const uint8_t*>(km.data_ptr<bool>());
    s.key_mask_stride_b = km.size(0) == 1 ? 0 : km.stride(0);
    s.key_mask_stride_j = km.stride(1);
  }
  TORCH_CHECK(args.q_segments.has_value() == args.k_segments.has_value(), op,
              ": segments must be given for both queries and keys (q_segments and k_segments)");
  if (args.q_segments) {
    prepare_segments(op, "q_segments", *args.q_segments, batch, q_len, device, out, &s.q_segments,
                     &s.q_segments_stride_b, &s.q_segment_bounds, &s.q_bounds_stride_b);
    prepare_segments(op, "k_segments", *args.k_segments, batch, k_len, device, out, &s.k_segments,
                     &s.k_segments_stride_b, &s.k_segment_bounds, &s.k_bounds_stride_b);
  }
  if (args.mask) {
    at::Tensor m = *args.mask;
    TORCH_CHECK(m.device() == device, op, ": mask must be on ", device, ", got ", m.device());
    const ScalarKind kind = scalar_kind_of(m.scalar_type(), op, "mask");
    TORCH_CHECK(m.dim() <= (int64_t)mask_shape.size(), op, ": mask with shape ", m.sizes(),
                " cannot broadcast to ", mask_shape);
    for (int64_t d = 0; d < m.dim(); ++d) {
      const int64_t md = m.size(m.dim() - 1 - d), want = mask_shape[mask_shape.size() - 1 - d];
      TORCH_CHECK(md == want || md == 1, op, ": mask with shape ", m.sizes(), " cannot broadcast to ",
                  mask_shape);
    }
    at::Tensor e = m.expand(mask_shape);  // zero strides, no copy
    e = e.view({batch, heads, q_len, k_len}).expand({batch, heads, q_len, k_len});
    out.keep_alive.push_back(m);
    s.mask = e.data_ptr();
    s.mask_kind = kind;
    s.mask_stride_b = batch == 1 ? 0 : e.stride(0);
    s.mask_stride_h = heads == 1 ? 0 : e.stride(1);
    s.mask_stride_i = q_len == 1 ? 0 : e.stride(2);
    s.mask_stride_j = k_len == 1 ? 0 : e.stride(3);
  }
  return out;
}

}  // namespace maskattn
