// Writing materialised masks: every output form (bool 1/0, float/half/bfloat16/double additive
// 0 / masked_value) is a fixed bit pattern per decision, so kernels only need the element width.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "../../scalar_kind.h"

namespace maskattn {
namespace gpu {

// The bits stored where a key may be attended and where it may not.
template <typename Bits>
struct MaskBits {
  Bits allowed;
  Bits masked;
};

template <typename Bits>
MaskBits<Bits> make_mask_bits(ScalarKind kind, double masked_value) {
  uint64_t allowed = 0, masked = 0;  // additive forms store +0.0 (all bits clear) where allowed
  switch (kind) {
    case ScalarKind::Bool: allowed = 1; break;
    case ScalarKind::Float16: masked = float_to_half_bits((float)masked_value); break;
    case ScalarKind::BFloat16: masked = float_to_bf16_bits((float)masked_value); break;
    case ScalarKind::Float32: {
      const float v = (float)masked_value;
      uint32_t bits;
      memcpy(&bits, &v, sizeof(bits));
      masked = bits;
      break;
    }
    case ScalarKind::Float64: memcpy(&masked, &masked_value, sizeof(masked)); break;
  }
  return {(Bits)allowed, (Bits)masked};
}

// Bytes per element of each output form.
inline int mask_elem_bytes(ScalarKind kind) {
  switch (kind) {
    case ScalarKind::Bool: return 1;
    case ScalarKind::Float16:
    case ScalarKind::BFloat16: return 2;
    case ScalarKind::Float32: return 4;
    case ScalarKind::Float64: return 8;
  }
  throw std::runtime_error("maskattn: unknown mask output dtype");
}

// 16 bytes of consecutive elements, packed little-endian with shifts (no pointer punning).
template <typename Bits, int kCount>
__device__ __forceinline__ uint4 pack16(const Bits (&v)[kCount]) {
  static_assert(kCount * sizeof(Bits) == 16, "a vector is 16 bytes");
  uint64_t lo = 0, hi = 0;
#pragma unroll
  for (int k = 0; k < kCount; ++k) {
    const int byte = k * (int)sizeof(Bits);
    if (byte < 8)
      lo |= (uint64_t)v[k] << (8 * byte);
    else
      hi |= (uint64_t)v[k] << (8 * (byte - 8));
  }
  return make_uint4((uint32_t)lo, (uint32_t)(lo >> 32), (uint32_t)hi, (uint32_t)(hi >> 32));
}

// Stores elements [e0, e0 + kCount) of `out` that lie below `len`: one 16-byte store when whole and aligned.
template <typename Bits, int kCount>
__device__ __forceinline__ void store_group(Bits* out, int64_t e0, int64_t len, bool vec_ok, const Bits (&v)[kCount]) {
  if (vec_ok && e0 + kCount <= len) {
    *reinterpret_cast<uint4*>(out + e0) = pack16(v);
    return;
  }
#pragma unroll
  for (int k = 0; k < kCount; ++k)
    if (e0 + k < len) out[e0 + k] = v[k];
}

}  // namespace gpu
}  // namespace maskattn
