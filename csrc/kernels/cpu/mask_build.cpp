// CPU mask construction: the MaskSpec predicate materialised, ids compared, MLM tokens drawn.
#include "../mask_build.h"

#include "../../philox.h"
#include "mask_store.h"

namespace maskattn {

void build_mask_cpu(const MaskBuildParams& p) {
  const cpu::MaskValues values{p.out_kind, p.masked_value};
  const MaskSpec& m = p.mask;
  const int64_t rows = p.batch * p.q_len;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / p.q_len, i = r % p.q_len;
    const KeyRange range = m.key_range(b, i);
    const int64_t base = r * p.k_len;
    for (int64_t j = 0; j < p.k_len; ++j) {
      const bool ok = j >= range.begin && j < range.end && m.allowed_in_range(b, 0, i, j);
      values.store(p.out, base + j, ok);
    }
  }
}

void padding_mask_from_ids_cpu(const IdsMaskParams& p) {
  const cpu::MaskValues values{p.out_kind, p.masked_value};
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < p.n; ++e) values.store(p.out, e, p.ids[e] != p.pad_id);
}

void random_token_mask_cpu(const TokenMaskParams& p) {
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < p.n; ++e) {
    const int64_t id = p.ids[e];
    bool special = false;
    for (int64_t s = 0; s < p.num_special; ++s) special |= id == p.special_ids[s];
    const bool pick = !special && philox_uniform(p.seed, p.offset, (uint64_t)e) < p.p;
    p.selected[e] = pick ? 1 : 0;
    p.masked_ids[e] = pick ? p.mask_id : id;
  }
}

}  // namespace maskattn
