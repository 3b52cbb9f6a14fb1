#include "mask_grad_args.h"

#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

namespace maskattn {

MaskGradBuffer mask_grad_buffer(const char* op, const at::Tensor& mask, at::IntArrayRef mask_shape, int64_t batch,
                                int64_t heads, int64_t q_len, int64_t k_len, bool float64_math) {
  TORCH_CHECK(at::isFloatingType(mask.scalar_type()), op,
              ": the gradient of mask exists for an additive (float) mask only, got ", mask.scalar_type());
  MaskGradBuffer b;
  b.grad = at::zeros(mask.sizes(), mask.options().dtype(float64_math ? at::kDouble : at::kFloat));
  // the same broadcast view prepare_mask gives the kernels, on the gradient's own (contiguous) storage
  const at::Tensor e = b.grad.expand(mask_shape).view({batch, heads, q_len, k_len});
  const int64_t size[4] = {batch, heads, q_len, k_len};
  int64_t stride[4];
  for (int d = 0; d < 4; ++d) {
    stride[d] = size[d] == 1 ? 0 : e.stride(d);
    b.out.reduced = b.out.reduced || (size[d] > 1 && stride[d] == 0);
  }
  b.out.data = b.grad.data_ptr();
  b.out.numel = b.grad.numel();
  b.out.stride_b = stride[0], b.out.stride_h = stride[1], b.out.stride_i = stride[2], b.out.stride_j = stride[3];
  return b;
}

}  // namespace maskattn
