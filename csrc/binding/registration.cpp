// Every maskattn schema, and which backend runs each op. The op functions live in *_ops.cpp.
#include <torch/library.h>

#include "ops.h"

TORCH_LIBRARY(maskattn, m) {
  m.def("attention_mask(int q_len, int k_len, bool causal, str align, int align_offset, int? window_left, "
        "int? window_right, Tensor? q_lengths, Tensor? k_lengths, Tensor? key_mask, Tensor? q_segments, "
        "Tensor? k_segments, int batch, ScalarType dtype, Device device, float masked_value) -> Tensor");
  m.def("padding_mask_from_ids(Tensor ids, int pad_id, ScalarType dtype, float masked_value) -> Tensor");
  m.def("random_token_mask(Tensor ids, int mask_id, float p, int[] special_ids, Generator? generator) "
        "-> (Tensor, Tensor)");
  m.def("masked_softmax(Tensor scores, Tensor? mask, float scale, bool causal, str align, int align_offset, "
        "int? window_left, int? window_right, Tensor? k_lengths, Tensor? key_mask, Tensor? q_segments, "
        "Tensor? k_segments) -> Tensor");
  m.def("masked_softmax_backward(Tensor grad, Tensor probs, float scale, bool causal, str align, int align_offset, "
        "int? window_left, int? window_right, Tensor? k_lengths) -> Tensor");
  m.def("masked_attention(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal, str align, int align_offset, "
        "int? window_left, int? window_right, Tensor? q_lengths, Tensor? k_lengths, Tensor? key_mask, "
        "Tensor? q_segments, Tensor? k_segments, float scale, bool return_weights) -> (Tensor, Tensor, Tensor)");
  m.def("masked_attention_backward(Tensor dout, Tensor? dlse, Tensor? dweights, Tensor q, Tensor k, Tensor v, "
        "Tensor out, Tensor lse, Tensor? mask, bool causal, str align, int align_offset, int? window_left, "
        "int? window_right, Tensor? q_lengths, Tensor? k_lengths, Tensor? key_mask, Tensor? q_segments, "
        "Tensor? k_segments, float scale) -> (Tensor, Tensor, Tensor)");
}

// The op functions pick the CPU or CUDA kernel from their tensors' device, so both backends
// register the same functions; without CUDA kernels the CUDA path raises how to rebuild.
TORCH_LIBRARY_IMPL(maskattn, CPU, m) {
  m.impl("padding_mask_from_ids", &maskattn::padding_mask_from_ids_op);
  m.impl("random_token_mask", &maskattn::random_token_mask_op);
  m.impl("masked_softmax", &maskattn::masked_softmax_op);
  m.impl("masked_softmax_backward", &maskattn::masked_softmax_backward_op);
  m.impl("masked_attention", &maskattn::masked_attention_op);
  m.impl("masked_attention_backward", &maskattn::masked_attention_backward_op);
}

TORCH_LIBRARY_IMPL(maskattn, CUDA, m) {
  m.impl("padding_mask_from_ids", &maskattn::padding_mask_from_ids_op);
  m.impl("random_token_mask", &maskattn::random_token_mask_op);
  m.impl("masked_softmax", &maskattn::masked_softmax_op);
  m.impl("masked_softmax_backward", &maskattn::masked_softmax_backward_op);
  m.impl("masked_attention", &maskattn::masked_attention_op);
  m.impl("masked_attention_backward", &maskattn::masked_attention_backward_op);
}

// A factory op may have no tensor argument to dispatch on: its kernel reads `device` itself.
TORCH_LIBRARY_IMPL(maskattn, CompositeExplicitAutograd, m) {
  m.impl("attention_mask", &maskattn::attention_mask_op);
}
