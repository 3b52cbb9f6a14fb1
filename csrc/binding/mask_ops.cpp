// Mask construction ops: argument checks, allocation, kernel call.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>

#include <mutex>

#include "../kernels/mask_build.h"
#include "device_call.h"
#include "mask_args.h"
#include "ops.h"

namespace maskattn {

static ScalarKind output_kind(at::ScalarType dtype, const char* op) {
  TORCH_CHECK(dtype == at::kBool || dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16 ||
                  dtype == at::kDouble,
              op, ": dtype must be torch.bool (True = may attend) or a float dtype (additive), got ", dtype);
  return scalar_kind_of(dtype, op, "dtype");
}

at::Tensor attention_mask_op(int64_t q_len, int64_t k_len, bool causal, std::string_view align, int64_t align_offset,
                             OptInt window_left, OptInt window_right, const OptTensor& q_lengths,
                             const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
                             const OptTensor& k_segments, int64_t batch, at::ScalarType dtype, at::Device device,
                             double masked_value) {
  const char* op = "maskattn.attention_mask";
  TORCH_CHECK(q_len >= 0, op, ": q_len must be >= 0, got ", q_len);
  TORCH_CHECK(k_len >= 0, op, ": k_len must be >= 0, got ", k_len);
  TORCH_CHECK(batch >= 1, op, ": batch must be >= 1, got ", batch);
  const MaskArgs args = make_mask_args(std::nullopt, causal, align, align_offset, window_left, window_right, q_lengths,
                                       k_lengths, key_mask, q_segments, k_segments);
  PreparedMask pm = prepare_mask(op, args, batch, 1, q_len, k_len, {batch, 1, q_len, k_len}, device);
  at::Tensor out = at::empty({batch, 1, q_len, k_len}, at::TensorOptions().dtype(dtype).device(device));
  MaskBuildParams p;
  p.out = out.data_ptr();
  p.out_kind = output_kind(dtype, op);
  p.masked_value = masked_value;
  p.batch = batch;
  p.q_len = q_len;
  p.k_len = k_len;
  p.mask = pm.spec;
  if (out.numel() == 0) return out;
  run_on_device(op, device, [&] { build_mask_cpu(p); }, [&](void* stream) { build_mask_cuda(p, stream); });
  return out;
}

static at::Tensor ids_as_int64(const char* op, const at::Tensor& ids) {
  TORCH_CHECK(!at::isFloatingType(ids.scalar_type()) && !at::isComplexType(ids.scalar_type()) &&
                  ids.scalar_type() != at::kBool,
              op, ": ids must be an integer tensor, got ", ids.scalar_type());
  return ids.to(at::kLong).contiguous();
}

at::Tensor padding_mask_from_ids_op(const at::Tensor& ids, int64_t pad_id, at::ScalarType dtype,
                                    double masked_value) {
  const char* op = "maskattn.padding_mask_from_ids";
  TORCH_CHECK(ids.dim() == 2, op, ": ids must have shape (B, L), got ", ids.sizes());
  at::Tensor ids64 = ids_as_int64(op, ids);
  at::Tensor out = at::empty(ids.sizes(), ids.options().dtype(dtype));
  IdsMaskParams p;
  p.ids = ids64.data_ptr<int64_t>();
  p.n = ids64.numel();
  p.pad_id = pad_id;
  p.out = out.data_ptr();
  p.out_kind = output_kind(dtype, op);
  p.masked_value = masked_value;
  if (p.n == 0) return out;
  run_on_device(op, ids.device(), [&] { padding_mask_from_ids_cpu(p); },
                [&](void* stream) { padding_mask_from_ids_cuda(p, stream); });
  return out;
}

std::tuple<at::Tensor, at::Tensor> random_token_mask_op(const at::Tensor& ids, int64_t mask_id, double prob,
                                                        at::IntArrayRef special_ids,
                                                        std::optional<at::Generator> generator) {
  const char* op = "maskattn.random_token_mask";
  TORCH_CHECK(ids.dim() == 2, op, ": ids must have shape (B, L), got ", ids.sizes());
  TORCH_CHECK(prob >= 0.0 && prob <= 1.0, op, ": p must lie in [0, 1], got ", prob);
  at::Tensor ids64 = ids_as_int64(op, ids);
  at::Tensor specials = at::tensor(special_ids, at::TensorOptions().dtype(at::kLong)).to(ids.device());
  at::Tensor masked = at::empty(ids.sizes(), ids.options().dtype(at::kLong));
  at::Tensor selected = at::empty(ids.sizes(), ids.options().dtype(at::kBool));
  TokenMaskParams p;
  p.ids = ids64.data_ptr<int64_t>();
  p.n = ids64.numel();
  p.mask_id = mask_id;
  p.p = (float)prob;
  p.special_ids = specials.data_ptr<int64_t>();
  p.num_special = specials.numel();
  p.masked_ids = masked.data_ptr<int64_t>();
  p.selected = reinterpret_cast<uint8_t*>(selected.data_ptr<bool>());
  if (p.n == 0) return {masked.to(ids.scalar_type()), selected};
  run_on_device(
      op, ids.device(),
      [&] {
        TORCH_CHECK(!generator || generator->device().is_cpu(), op, ": generator must be a CPU generator for CPU ids");
        auto* g = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
        std::lock_guard<std::mutex> lock(g->mutex_);
        p.seed = g->random64();  // advances the generator: the next call draws afresh
        p.offset = 0;
        random_token_mask_cpu(p);
      },
      [&](void* stream) {
        TORCH_CHECK(!generator || generator->device().is_cuda(), op, ": generator must be a CUDA generator for CUDA ids");
        auto so = cuda_philox_seed_offset(generator, 4);
        p.seed = so.first;
        p.offset = so.second;
        random_token_mask_cuda(p, stream);
      });
  return {masked.to(ids.scalar_type()), selected};
}

}  // namespace maskattn
