// Writes a mask element in the requested output form (bool 1/0, or additive 0 / masked_value).
#pragma once
#include <cstdint>

#include "../../scalar_kind.h"

namespace maskattn {
namespace cpu {

// The two stored values of a mask in one output form, resolved once per call.
struct MaskValues {
  ScalarKind kind;
  double masked_value;

  template <typename T>
  static void put(void* out, int64_t e, T v) { static_cast<T*>(out)[e] = v; }

  void store(void* out, int64_t e, bool allowed) const {
    switch (kind) {
      case ScalarKind::Bool: put<uint8_t>(out, e, allowed ? 1 : 0); break;
      case ScalarKind::Float32: put<float>(out, e, allowed ? 0.f : (float)masked_value); break;
      case ScalarKind::Float64: put<double>(out, e, allowed ? 0.0 : masked_value); break;
      case ScalarKind::Float16:
        put<uint16_t>(out, e, allowed ? 0 : float_to_half_bits((float)masked_value));
        break;
      case ScalarKind::BFloat16:
        put<uint16_t>(out, e, allowed ? 0 : float_to_bf16_bits((float)masked_value));
        break;
    }
  }
};

}  // namespace cpu
}  // namespace maskattn
