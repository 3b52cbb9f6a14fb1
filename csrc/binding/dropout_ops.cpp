// The debug op behind the dropout tests: attention dropout's keep mask for one (seed, offset).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include "../kernels/dropout_mask.h"
#include "device_call.h"
#include "ops.h"

namespace maskattn {

at::Tensor dropout_keep_mask_op(int64_t batch, int64_t heads, int64_t q_len, int64_t k_len, double p, int64_t seed,
                                int64_t offset, at::Device device) {
  const char* op = "maskattn.dropout_keep_mask";
  TORCH_CHECK(batch >= 0 && heads >= 0 && q_len >= 0 && k_len >= 0, op, ": sizes must be >= 0, got (", batch, ", ",
              heads, ", ", q_len, ", ", k_len, ")");
  TORCH_CHECK(p >= 0.0 && p <= 1.0, op, ": p must lie in [0, 1], got ", p);
  at::Tensor keep = at::empty({batch, heads, q_len, k_len}, at::TensorOptions().dtype(at::kBool).device(device));
  if (keep.numel() == 0) return keep;
  const DropoutSpec d = make_dropout_spec(p, (uint64_t)seed, (uint64_t)offset, heads, q_len, k_len);
  uint8_t* out = reinterpret_cast<uint8_t*>(keep.data_ptr<bool>());
  run_on_device(op, device, [&] { dropout_keep_mask_cpu(d, batch, out); },
                [&](void* stream) { dropout_keep_mask_cuda(d, batch, out, stream); });
  return keep;
}

}  // namespace maskattn
