// When a parallel region pays for itself.
#pragma once
#include <cstdint>

namespace maskattn {
namespace cpu {

// Waking the team's other threads costs microseconds, more than this much work (multiply-adds, or
// elements of a row pass) takes one thread; torch's own grain (at::internal::GRAIN_SIZE) is the same.
constexpr int64_t kParallelGrain = 32768;

// For `#pragma omp parallel if(...)`: more than one item and enough work to share.
// (work in double: a product of five sizes can pass int64 on no real input, but must not wrap)
inline bool worth_parallel(int64_t items, double work) { return items > 1 && work >= double(kParallelGrain); }

}  // namespace cpu
}  // namespace maskattn
