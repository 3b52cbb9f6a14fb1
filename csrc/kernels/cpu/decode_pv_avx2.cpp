// The decoding forward's O += P V (decode_pv.h) in the baseline's registers: 16 under AVX2, 8 of
// them accumulators beside the V vectors and a broadcast.
#include "cpu_kernels.h"
#define MASKATTN_DECODE_PV_NS decode_pv_avx2_path
#include "decode_pv.h"

namespace maskattn {
namespace cpu {

void decode_pv_avx2(const DecodePvArgs& a) { decode_pv_avx2_path::decode_pv_with<8>(a); }

}  // namespace cpu
}  // namespace maskattn
