// Philox4x32-10 draws (csrc/philox.h's stream) for a batch of counters on the CPU's vector units:
// the keep decisions of attention dropout are these draws' 16-bit halves (dropout_spec.h).
#pragma once
#include <cstdint>

namespace maskattn {
namespace cpu {

constexpr int kDrawBatch = 32;  // counters per draw call

// The 16-bit draws of counters group[k] (elements 8 group[k] .. + 7, DropoutSpec's order) into
// dst[k][0..8), for k < kDrawBatch, under key seed and counter words 2, 3 = offset.
// AVX2 (8 counters per register, four interleaved streams: a round is a chain of dependent
// multiplies, one stream alone waits on their latency).
void draw_groups_avx2(uint64_t seed, uint64_t offset, const uint64_t* group, uint16_t* const* dst);
// AVX-512F (16 counters per register, two streams). Called only where cpu_isa.h found AVX-512.
void draw_groups_avx512(uint64_t seed, uint64_t offset, const uint64_t* group, uint16_t* const* dst);

}  // namespace cpu
}  // namespace maskattn
