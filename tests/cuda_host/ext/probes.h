// Small kernels that exercise one primitive of the host GPU each (raw pointers, no torch), so the
// tests can hold the shim itself to the PTX ISA and show what misuse it reports. Each returns the
// launch's cudaError_t (0 = success); probe_error_text says why a launch failed.
#pragma once
#include <cstdint>

namespace probes {

int ldmatrix_x4(const uint16_t* rows, const int32_t* row_of_lane, bool trans, uint32_t* regs);
int mma_m16n8k16(const uint32_t* a, const uint32_t* b, const float* c, bool bf16, float* d);
int shuffle(int mode, int param, int width, double* out, uint32_t* votes);
int cp_async(bool wait_before_reading, uint16_t* out);
int cp_async_left_in_flight();
int cross_warp_handoff(bool with_barrier, int32_t* out);
int divergent_barrier();
int divergent_shuffle();
int collective_after_exit();
int misaligned_load();
void to_half_bits(const float* x, uint16_t* out, int64_t n);
void to_bf16_bits(const float* x, uint16_t* out, int64_t n);
const char* error_text(int err);

}  // namespace probes
