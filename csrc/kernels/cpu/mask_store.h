// Writes mask rows in the requested output form (bool 1/0, or additive 0 / masked_value).
#pragma once
#include <cstdint>
#include <type_traits>

#include "../../scalar_kind.h"

namespace maskattn {
namespace cpu {

// The stored "may attend" and "masked" values of one output element type.
template <typename T>
struct MaskPair {
  T allowed, masked;
};

// Bit patterns of the two values for each output form, resolved once per call.
struct MaskValues {
  ScalarKind kind;
  double masked_value;

  template <typename T>
  MaskPair<T> pair() const;
};

template <>
inline MaskPair<uint8_t> MaskValues::pair<uint8_t>() const { return {1, 0}; }
template <>
inline MaskPair<float> MaskValues::pair<float>() const { return {0.f, (float)masked_value}; }
template <>
inline MaskPair<double> MaskValues::pair<double>() const { return {0.0, masked_value}; }
template <>
inline MaskPair<uint16_t> MaskValues::pair<uint16_t>() const {
  const float v = (float)masked_value;
  return {0, kind == ScalarKind::Float16 ? float_to_half_bits(v) : float_to_bf16_bits(v)};
}

template <typename T>
inline void fill_run(T* out, int64_t n, T v) {
  for (int64_t j = 0; j < n; ++j) out[j] = v;
}

// Calls f(T*) with the output pointer typed by the output form.
template <typename F>
inline void with_output_type(ScalarKind kind, void* out, F&& f) {
  switch (kind) {
    case ScalarKind::Bool: f(static_cast<uint8_t*>(out)); break;
    case ScalarKind::Float32: f(static_cast<float*>(out)); break;
    case ScalarKind::Float64: f(static_cast<double*>(out)); break;
    case ScalarKind::Float16:
    case ScalarKind::BFloat16: f(static_cast<uint16_t*>(out)); break;
  }
}

}  // namespace cpu
}  // namespace maskattn
