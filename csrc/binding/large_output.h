// Allocation of the large results the ops write once in whole (L x L probabilities, their gradient).
#pragma once
#include <ATen/core/Tensor.h>

namespace maskattn {

// at::empty, and for a CPU result of many megabytes a request (Linux: madvise MADV_HUGEPAGE on
// its 2 MiB-aligned interior) that the pages it has yet to fault in come as huge pages: memory the
// allocator takes fresh from the OS costs a fault and a zeroing per 4 KiB page otherwise, more than
// the softmax that fills it. Advisory: nothing changes where the system declines it.
at::Tensor empty_large_output(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace maskattn
