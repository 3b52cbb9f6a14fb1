// The CPU's fp32 FMA rate at the widest vectors the selected path runs, every thread busy: the
// compute ceiling the bench sets beside its ratios (a matmul library may reach less of it).
#pragma once
#include <cstdint>

namespace maskattn {
namespace cpu {

// Independent FMA chains, enough to cover two pipes' latency, for `rounds` rounds a thread.
// Returns the floating-point operations done on one thread (the result of the chains folded
// into `sink` so that nothing is optimised away).
double fma_chains_avx2(int64_t rounds, float* sink);
double fma_chains_avx512(int64_t rounds, float* sink);

// All threads of the current OpenMP team size, `rounds` each; returns the operations done.
double fma_peak_run(int64_t rounds);

}  // namespace cpu
}  // namespace maskattn
