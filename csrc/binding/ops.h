// The torch-facing functions behind every maskattn op; schemas live in registration.cpp.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>
#include <tuple>

namespace maskattn {

using OptTensor = std::optional<at::Tensor>;
using OptInt = std::optional<int64_t>;

at::Tensor attention_mask_op(int64_t q_len, int64_t k_len, bool causal, std::string_view align, int64_t align_offset,
                             OptInt window_left, OptInt window_right, const OptTensor& q_lengths,
                             const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
                             const OptTensor& k_segments, int64_t batch, at::ScalarType dtype, at::Device device,
                             double masked_value);

at::Tensor padding_mask_from_ids_op(const at::Tensor& ids, int64_t pad_id, at::ScalarType dtype,
                                    double masked_value);

std::tuple<at::Tensor, at::Tensor> random_token_mask_op(const at::Tensor& ids, int64_t mask_id, double p,
                                                        at::IntArrayRef special_ids,
                                                        std::optional<at::Generator> generator);

at::Tensor masked_softmax_op(const at::Tensor& scores, const OptTensor& mask, double scale, bool causal,
                             std::string_view align, int64_t align_offset, OptInt window_left, OptInt window_right,
                             const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
                             const OptTensor& k_segments);

at::Tensor masked_softmax_backward_op(const at::Tensor& grad, const at::Tensor& probs, double scale, bool causal,
                                      std::string_view align, int64_t align_offset, OptInt window_left,
                                      OptInt window_right, const OptTensor& k_lengths);

std::tuple<at::Tensor, at::Tensor, at::Tensor> masked_attention_op(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const OptTensor& mask, bool causal,
    std::string_view align, int64_t align_offset, OptInt window_left, OptInt window_right,
    const OptTensor& q_lengths, const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
    const OptTensor& k_segments, double scale, bool return_weights);

std::tuple<at::Tensor, at::Tensor, at::Tensor> masked_attention_backward_op(
    const at::Tensor& dout, const OptTensor& dlse, const OptTensor& dweights, const at::Tensor& q,
    const at::Tensor& k, const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
    const OptTensor& mask, bool causal, std::string_view align, int64_t align_offset, OptInt window_left,
    OptInt window_right, const OptTensor& q_lengths, const OptTensor& k_lengths, const OptTensor& key_mask,
    const OptTensor& q_segments, const OptTensor& k_segments, double scale);

}  // namespace maskattn
