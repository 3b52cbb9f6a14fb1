// Converting rows between the stored element types and float scratch.
#pragma once
#include <cstdint>

#include "../../scalar_kind.h"
#include "attention_rows.h"

namespace maskattn {
namespace cpu {

inline void load_row_as_float(ScalarKind kind, const void* base, int64_t offset, int64_t n, float* dst) {
  switch (kind) {
    case ScalarKind::Float32: {
      const float* s = static_cast<const float*>(base) + offset;
      for (int64_t j = 0; j < n; ++j) dst[j] = s[j];
      break;
    }
    case ScalarKind::Float16:
    case ScalarKind::BFloat16: load_row_f32(kind, base, offset, n, 1.f, dst, n); break;  // vectorised
    case ScalarKind::Float64: {
      const double* s = static_cast<const double*>(base) + offset;
      for (int64_t j = 0; j < n; ++j) dst[j] = (float)s[j];
      break;
    }
    default: break;
  }
}

inline void store_row_from_float(ScalarKind kind, void* base, int64_t offset, int64_t n, const float* src) {
  switch (kind) {
    case ScalarKind::Float32: {
      float* d = static_cast<float*>(base) + offset;
      for (int64_t j = 0; j < n; ++j) d[j] = src[j];
      break;
    }
    case ScalarKind::Float16:
    case ScalarKind::BFloat16: store_row(kind, src, n, 1.f, base, offset); break;  // vectorised
    case ScalarKind::Float64: {
      double* d = static_cast<double*>(base) + offset;
      for (int64_t j = 0; j < n; ++j) d[j] = src[j];
      break;
    }
    default: break;
  }
}

}  // namespace cpu
}  // namespace maskattn
