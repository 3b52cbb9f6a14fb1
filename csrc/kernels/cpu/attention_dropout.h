// Attention dropout on CPU probability rows: the keep decisions of DropoutSpec (dropout_spec.h)
// for a run of keys, drawn kDrawBatch Philox counters at a time, and applied to fp32 rows.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../../dropout_spec.h"
#include "cpu_isa.h"
#include "philox_draw.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

constexpr int64_t kDropoutRowKeys = 64;  // keys per row of dropout_rows

typedef uint16_t bits16x8 __attribute__((vector_size(16)));
typedef int32_t i32x8_ __attribute__((vector_size(32)));
typedef float f32x8_ __attribute__((vector_size(32)));

// What dropout_rows writes: the keep factors, or the rows multiplied by them in place.
enum class DropoutWrite { KeepFactors, ApplyInPlace };

// keep[r * ld + c] = kept where element e0[r] + c survives the dropout, 0 where it is dropped
// (ApplyInPlace: keep[r * ld + c] *= that factor), for rows r < rows (<= 64) and c < n
// (<= kDropoutRowKeys). The groups the rows need are drawn kDrawBatch at a time, whatever row they
// belong to: misaligned rows cost one group more, no more.
inline void dropout_rows(const DropoutSpec& d, const uint64_t* e0, int64_t rows, int64_t n, float kept, float* keep,
                         int64_t ld, DropoutWrite write = DropoutWrite::KeepFactors) {
  if (n <= 0) return;
  constexpr int64_t kRowBits = kDropoutRowKeys + 2 * kDropoutGroup;  // a row's groups, aligned
  alignas(32) uint16_t bits[64 * kRowBits];
  uint64_t group[kDrawBatch];
  uint16_t* dst[kDrawBatch];
  const auto draw = selected_cpu_isa() >= CpuIsa::Avx512 ? draw_groups_avx512 : draw_groups_avx2;
  bool whole_groups = n == kDropoutRowKeys;
  for (int64_t r = 0; r < rows; ++r) whole_groups &= e0[r] % kDropoutGroup == 0;
  if (whole_groups) {
    // the common case (a full key tile, rows starting on a group): each row is kRowGroups whole
    // groups, kDrawBatch / kRowGroups rows a draw (a short last batch draws its last row again)
    constexpr int kRowGroups = kDropoutRowKeys / kDropoutGroup;
    for (int64_t r0 = 0; r0 < rows; r0 += kDrawBatch / kRowGroups) {
      for (int k = 0; k < kDrawBatch; ++k) {
        const int64_t r = std::min<int64_t>(r0 + k / kRowGroups, rows - 1);
        group[k] = e0[r] / kDropoutGroup + k % kRowGroups;
        dst[k] = bits + r * kRowBits + (k % kRowGroups) * kDropoutGroup;
      }
      draw(d.seed, d.offset, group, dst);
    }
  }
  int queued = 0;
  for (int64_t r = 0; r < rows && !whole_groups; ++r)
    for (uint64_t g = e0[r] / kDropoutGroup; g <= (e0[r] + n - 1) / kDropoutGroup; ++g) {
      group[queued] = g;
      dst[queued++] = bits + r * kRowBits + (g - e0[r] / kDropoutGroup) * kDropoutGroup;
      if (queued == kDrawBatch) {
        draw(d.seed, d.offset, group, dst);
        queued = 0;
      }
    }
  if (queued > 0) {
    alignas(32) uint16_t unused[kDropoutGroup];
    for (int k = queued; k < kDrawBatch; ++k) group[k] = 0, dst[k] = unused;
    draw(d.seed, d.offset, group, dst);
  }
  // 8 lanes (one AVX2 register): wider generic compares are split into scalar code by GCC
  const i32x8_ below = i32x8_{} + ((int32_t)d.threshold - 1);  // bits > below, as AVX2 compares
  int32_t kept_word;
  std::memcpy(&kept_word, &kept, sizeof(kept_word));
  const i32x8_ kept_bits = i32x8_{} + kept_word;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* src = bits + r * kRowBits + e0[r] % kDropoutGroup;
    float* out = keep + r * ld;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      bits16x8 b;
      std::memcpy(&b, src + c, sizeof(b));
      const i32x8_ factor = kept_bits & (__builtin_convertvector(b, i32x8_) > below);  // kept or +0.0
      if (write == DropoutWrite::KeepFactors) {
        std::memcpy(out + c, &factor, sizeof(factor));
      } else {  // x * factor, not a select: NaN stays NaN where dropped, as x * 0 does in torch
        f32x8_ x, f;
        std::memcpy(&x, out + c, sizeof(x));
        std::memcpy(&f, &factor, sizeof(f));
        x *= f;
        std::memcpy(out + c, &x, sizeof(x));
      }
    }
    for (; c < n; ++c) {
      const float factor = src[c] >= d.threshold ? kept : 0.f;
      out[c] = write == DropoutWrite::KeepFactors ? factor : out[c] * factor;
    }
  }
}

// keep[c] = kept where element e0 + c survives the dropout, 0 where it is dropped, for any n:
// the row cut into pieces of kDropoutRowKeys keys, drawn 64 pieces at a time.
inline void dropout_row(const DropoutSpec& d, uint64_t e0, int64_t n, float kept, float* keep) {
  constexpr int64_t kPieces = 64;
  uint64_t starts[kPieces];
  const int64_t whole = n / kDropoutRowKeys;
  for (int64_t p0 = 0; p0 < whole; p0 += kPieces) {
    const int64_t count = std::min(kPieces, whole - p0);
    for (int64_t k = 0; k < count; ++k) starts[k] = e0 + (uint64_t)((p0 + k) * kDropoutRowKeys);
    dropout_rows(d, starts, count, kDropoutRowKeys, kept, keep + p0 * kDropoutRowKeys, kDropoutRowKeys);
  }
  if (n % kDropoutRowKeys) {
    starts[0] = e0 + (uint64_t)(whole * kDropoutRowKeys);
    dropout_rows(d, starts, 1, n % kDropoutRowKeys, kept, keep + whole * kDropoutRowKeys, kDropoutRowKeys);
  }
}

// x[c] *= factor[c] for c < n.
inline void multiply_row(float* x, const float* factor, int64_t n) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) store16(x + c, load16(x + c) * load16(factor + c));
  for (; c < n; ++c) x[c] *= factor[c];
}

// Drops entries of rows i0 .. i0 + rows - 1 of (b, h) over keys j0 .. j0 + n - 1 in a tile of
// stride ld, in place (entries kept are multiplied by `kept`).
inline void dropout_tile(const DropoutSpec& d, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                         float kept, float* x, int64_t ld) {
  uint64_t e0[64];
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t count = std::min<int64_t>(64, rows - r0);
    for (int64_t r = 0; r < count; ++r) e0[r] = d.element(b, h, i0 + r0 + r, j0);
    dropout_rows(d, e0, count, n, kept, x + r0 * ld, ld, DropoutWrite::ApplyInPlace);
  }
}

}  // namespace cpu
}  // namespace maskattn
