// Where the backward kernels put the gradient of an additive float mask.
//
// The gradient of the loss with respect to the scaled, masked score s[b, h, i, j] is also its
// gradient with respect to the additive mask at that position; a mask that broadcasts over some
// dims receives the sum over them. Element (b, h, i, j) adds into
// data[b * stride_b + h * stride_h + i * stride_i + j * stride_j]: a zero stride is a dim the mask
// broadcasts over (several score elements meet in one mask element: `reduced`), else every mask
// element has a single score element and kernels may store instead of adding.
#pragma once
#include <cstdint>

#include "../host_device.h"

namespace maskattn {

struct MaskGradOut {
  void* data = nullptr;  // zero-filled by the caller: float64 on the CPU float64 path, else float32
  int64_t numel = 0;
  int64_t stride_b = 0, stride_h = 0, stride_i = 0, stride_j = 0;
  bool reduced = false;

  MA_HD bool wanted() const { return data != nullptr; }
  MA_HD int64_t offset(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return b * stride_b + h * stride_h + i * stride_i + j * stride_j;
  }
};

}  // namespace maskattn
