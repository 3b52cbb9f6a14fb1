// The masked-language-model selection rule, shared by the CPU and CUDA kernels so a
// (seed, offset) pair selects the same positions on either device.
#pragma once
#include <cstdint>

#include "host_device.h"
#include "kernels/mask_build.h"
#include "philox.h"

namespace maskattn {

// Position e is selected iff its id is not special and its uniform draw is below p (in float).
MA_HD bool token_selected(const TokenMaskParams& p, int64_t e) {
  const int64_t id = p.ids[e];
  for (int64_t s = 0; s < p.num_special; ++s)
    if (id == p.special_ids[s]) return false;
  return philox_uniform(p.seed, p.offset, (uint64_t)e) < p.p;
}

// Writes selected[e] and masked_ids[e].
MA_HD void select_token(const TokenMaskParams& p, int64_t e) {
  const bool pick = token_selected(p, e);
  p.selected[e] = pick ? 1 : 0;
  p.masked_ids[e] = pick ? p.mask_id : p.ids[e];
}

}  // namespace maskattn
