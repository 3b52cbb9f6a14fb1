// The decoding forward's O += P V (decode_pv.h) with AVX-512VL's 32 vector registers: 16
// accumulators, so the output rows of up to 128 values stay in registers (the baseline: 64). The
// same FMAs in the same order as the baseline's entry: both give the same bits. Called only where
// cpu_isa.h found AVX-512.
#include <cstdint>

// shared inline helpers first, compiled for the baseline (a copy compiled for AVX-512 could be
// the one the linker keeps for every caller)
#include "convert16.h"
#include "cpu_kernels.h"
#include "vec16.h"
#include "widen_rows.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma,f16c")
#define MASKATTN_DECODE_PV_NS decode_pv_avx512_path
#include "decode_pv.h"

namespace maskattn {
namespace cpu {

void decode_pv_avx512(const DecodePvArgs& a) { decode_pv_avx512_path::decode_pv_with<16>(a); }

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
