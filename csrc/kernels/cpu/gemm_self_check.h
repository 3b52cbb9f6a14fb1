// A run-time proof of a bf16 product microkernel on the CPU at hand, taken once before the path
// that uses it may be chosen: the wider paths cannot all be exercised on the machines that build
// and test the package, so a kernel that is wrong on some CPU is refused there, never run on data.
#pragma once

#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

// fn computes, in every GemmInto mode and at odd m and n, the product of small integers (exact in
// bf16, their sums exact in fp32 whatever the order) bit for bit as a scalar loop does.
bool gemm_bf16_self_check(GemmBf16Fn fn);

// A path's rounding of tiles into bf16 rows and k-pairs over rows gives bf16_tiles.h's bits (NaN
// as some NaN) on normal floats, ties, infinities and NaN, and leaves the padding as specified.
bool bf16_rounding_self_check(RoundTileFn rows_fn, RoundTileFn pairs_fn);

}  // namespace cpu
}  // namespace maskattn
