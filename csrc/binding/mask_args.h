// Turns the mask arguments every op shares into a checked MaskSpec.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <string>
#include <string_view>
#include <vector>

#include "../mask_spec.h"

namespace maskattn {

struct MaskArgs {
  std::optional<at::Tensor> mask;  // explicit, broadcastable to (batch, heads, q_len, k_len)
  bool causal = false;
  std::string align = "top_left";
  int64_t align_offset = 0;  // integer alignment: added to every aligned position
  std::optional<int64_t> window_left, window_right;
  std::optional<at::Tensor> q_lengths, k_lengths, key_mask;
  std::optional<at::Tensor> q_segments, k_segments;  // packed sequences: document id per position
};

// All mask arguments of an op in one value (absent ones as std::nullopt).
inline MaskArgs make_mask_args(const std::optional<at::Tensor>& mask, bool causal, std::string_view align,
                               int64_t align_offset, std::optional<int64_t> window_left,
                               std::optional<int64_t> window_right, const std::optional<at::Tensor>& q_lengths,
                               const std::optional<at::Tensor>& k_lengths, const std::optional<at::Tensor>& key_mask,
                               const std::optional<at::Tensor>& q_segments,
                               const std::optional<at::Tensor>& k_segments) {
  return MaskArgs{mask,      causal,    std::string(align), align_offset, window_left, window_right,
                  q_lengths, k_lengths, key_mask,           q_segments,   k_segments};
}

// A MaskSpec plus the tensors its pointers refer to (converted copies of small inputs).
struct PreparedMask {
  MaskSpec spec;
  std::vector<at::Tensor> keep_alive;
};

// Checks every mask argument against the problem's shape and device (errors name the argument,
// prefixed by `op`) and fills the spec. `mask_shape` is the shape the explicit mask must
// broadcast to; it is viewed as (batch, heads, q_len, k_len).
PreparedMask prepare_mask(const char* op, const MaskArgs& args, int64_t batch, int64_t heads,
                          int64_t q_len, int64_t k_len, at::IntArrayRef mask_shape,
                          const at::Device& device);

ScalarKind scalar_kind_of(const at::ScalarType& t, const char* op, const char* arg);

}  // namespace maskattn
