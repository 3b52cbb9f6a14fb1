// When a parallel region pays for itself, and running one without a team when it does not.
#pragma once
#include <omp.h>

#include <cstdint>

namespace maskattn {
namespace cpu {

// Waking the team's other threads costs microseconds, more than this much work (multiply-adds, or
// elements of a row pass) takes one thread; torch's own grain (at::internal::GRAIN_SIZE) is the same.
constexpr int64_t kParallelGrain = 32768;

// More than one item and enough work to share.
// (work in double: a product of five sizes can pass int64 on no real input, but must not wrap)
inline bool worth_parallel(int64_t items, double work) { return items > 1 && work >= double(kParallelGrain); }

// Runs `body`, whose loops are `#pragma omp for`, on a team when `parallel` and more than one thread
// is allowed; else on the calling thread with no team: a one-thread team (`omp parallel if (false)`)
// is still built per call and ends each loop and the region with a barrier whose futex wake is a
// system call. Inside a caller's active team the body gets a team of its own (of one thread,
// nesting being off), so its loops never bind to the caller's team.
template <typename Body>
void run_region(bool parallel, const Body& body) {
  if (parallel && omp_get_max_threads() > 1) {
#pragma omp parallel
    body();
  } else if (omp_in_parallel()) {
#pragma omp parallel num_threads(1)
    body();
  } else {
    body();  // orphaned loops bind to the initial thread's implicit team: no barrier
  }
}

}  // namespace cpu
}  // namespace maskattn
