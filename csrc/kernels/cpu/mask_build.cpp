// CPU mask construction: the MaskSpec predicate materialised, ids compared, MLM tokens drawn.
#include "../mask_build.h"

#include "../../token_selection.h"
#include "mask_store.h"
#include "parallel_grain.h"

namespace maskattn {
namespace {

using namespace cpu;

// One row: masked / allowed / masked runs around the band, then the element-wise masks inside it.
template <typename T>
void build_rows(const MaskBuildParams& p, T* out, MaskPair<T> v) {
  const MaskSpec& m = p.mask;
  const int64_t rows = p.batch * p.q_len, k_len = p.k_len;
  run_region(worth_parallel(rows, double(rows) * k_len), [&] {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / p.q_len, i = r % p.q_len;
      const KeyRange range = m.key_range(b, i);
      T* row = out + r * k_len;
      fill_run(row, range.begin, v.masked);
      fill_run(row + range.begin, range.end - range.begin, v.allowed);
      fill_run(row + range.end, k_len - range.end, v.masked);
      if (m.has_elementwise())
        for (int64_t j = range.begin; j < range.end; ++j)
          if (!m.allowed_in_range(b, 0, i, j)) row[j] = v.masked;
    }
  });
}

}  // namespace

void build_mask_cpu(const MaskBuildParams& p) {
  const MaskValues values{p.out_kind, p.masked_value};
  with_output_type(p.out_kind, p.out, [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    build_rows<T>(p, out, values.pair<T>());
  });
}

void padding_mask_from_ids_cpu(const IdsMaskParams& p) {
  const MaskValues values{p.out_kind, p.masked_value};
  with_output_type(p.out_kind, p.out, [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    const MaskPair<T> v = values.pair<T>();
    run_region(worth_parallel(p.n, p.n), [&] {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < p.n; ++e) out[e] = p.ids[e] != p.pad_id ? v.allowed : v.masked;
    });
  });
}

void random_token_mask_cpu(const TokenMaskParams& p) {
  run_region(worth_parallel(p.n, p.n * 8.0), [&] {  // a Philox draw costs several element writes
#pragma omp for schedule(static)
    for (int64_t e = 0; e < p.n; ++e) select_token(p, e);
  });
}

}  // namespace maskattn
