// CPU explicit-mask block summary: one (batch, row block) per work item, each reading its rows
// once and keeping two flags per key block; contiguous rows are read in whole blocks.
#include "../mask_summary.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel_grain.h"

namespace maskattn {
namespace {

// Flags of n contiguous elements of one mask row, folded into `any` / `full` (1 = true); the
// same tests as mask_element_flags, typed so the loop vectorises.
template <typename T, typename AnyFn, typename ZeroFn>
inline void fold_run(const T* row, int64_t n, AnyFn allowed, ZeroFn zero, uint8_t& any, uint8_t& full) {
  uint8_t a = 0, f = 1;
  for (int64_t c = 0; c < n; ++c) {  // no early exit: the loop vectorises
    a |= (uint8_t)allowed(row[c]);
    f &= (uint8_t)zero(row[c]);
  }
  any |= a;
  full &= f;
}

// n elements of a row from offset o, along the key stride.
void fold_row_block(const MaskSummaryParams& p, int64_t o, int64_t n, uint8_t& any, uint8_t& full) {
  if (p.stride_j != 1) {
    for (int64_t c = 0; c < n; ++c) {
      const MaskElementFlags e = mask_element_flags(p.kind, p.mask, o + c * p.stride_j);
      any |= e.any;
      full &= e.full;
    }
    return;
  }
  switch (p.kind) {
    case ScalarKind::Bool:
      fold_run(static_cast<const uint8_t*>(p.mask) + o, n, [](uint8_t v) { return v != 0; },
               [](uint8_t v) { return v != 0; }, any, full);
      break;
    case ScalarKind::Float32:
      fold_run(static_cast<const float*>(p.mask) + o, n, [](float v) { return v != -INFINITY; },
               [](float v) { return v == 0.f; }, any, full);
      break;
    case ScalarKind::Float64:
      fold_run(static_cast<const double*>(p.mask) + o, n, [](double v) { return v != -INFINITY; },
               [](double v) { return v == 0.0; }, any, full);
      break;
    case ScalarKind::Float16:
      fold_run(static_cast<const uint16_t*>(p.mask) + o, n, [](uint16_t v) { return v != 0xfc00u; },
               [](uint16_t v) { return (v & 0x7fffu) == 0; }, any, full);
      break;
    case ScalarKind::BFloat16:
      fold_run(static_cast<const uint16_t*>(p.mask) + o, n, [](uint16_t v) { return v != 0xff80u; },
               [](uint16_t v) { return (v & 0x7fffu) == 0; }, any, full);
      break;
  }
}

}  // namespace

void mask_block_summary_cpu(const MaskSummaryParams& p) {
  const int64_t rb = p.row_blocks(), kb = p.key_blocks(), items = p.batch * rb;
  cpu::run_region(cpu::worth_parallel(items, double(items) * kMaskBlock * p.heads * p.keys), [&] {
    // flags of the current head, per key block: rows are read in order, one key block at a time
    std::vector<uint8_t> any((size_t)kb), full((size_t)kb);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t b = it / rb, ib = it % rb;
      const int64_t i0 = ib * kMaskBlock, i1 = std::min(i0 + kMaskBlock, p.rows);
      uint8_t* out = p.blocks + it * kb;
      for (int64_t jb = 0; jb < kb; ++jb) out[jb] = kMaskBlockFull;  // no head seen yet: nothing allowed, all full
      for (int64_t h = 0; h < p.heads; ++h) {
        std::fill(any.begin(), any.end(), 0);
        std::fill(full.begin(), full.end(), 1);
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = b * p.stride_b + h * p.stride_h + i * p.stride_i;
          for (int64_t jb = 0; jb < kb; ++jb) {
            const int64_t j0 = jb * kMaskBlock, n = std::min(j0 + kMaskBlock, p.keys) - j0;
            fold_row_block(p, row + j0 * p.stride_j, n, any[jb], full[jb]);
          }
        }
        // a block is Any if some head allows something, Full if every head allows everything
        for (int64_t jb = 0; jb < kb; ++jb)
          out[jb] = (uint8_t)((out[jb] | (any[jb] ? kMaskBlockAny : 0)) & (full[jb] ? 0xff : ~kMaskBlockFull));
      }
    }
  });
}

}  // namespace maskattn
