// Torch-free entry points of the debug op that materialises attention dropout's keep mask.
#pragma once
#include <cstdint>

#include "../dropout_spec.h"

namespace maskattn {

// keep (batch, d.heads, d.q_len, d.k_len) uint8, contiguous: 1 where `d` keeps the probability,
// computed by the same code the attention kernels of the device draw with.
void dropout_keep_mask_cpu(const DropoutSpec& d, int64_t batch, uint8_t* keep);
void dropout_keep_mask_cuda(const DropoutSpec& d, int64_t batch, uint8_t* keep, void* stream);

}  // namespace maskattn
