// Torch-free entry points of the mask-construction kernels (CPU and CUDA).
#pragma once
#include <cstdint>

#include "../mask_spec.h"

namespace maskattn {

// out (batch, q_len, k_len), contiguous: the predicate of `mask` (head 0) materialised.
// Bool output stores 1/0; float outputs store 0 / masked_value.
struct MaskBuildParams {
  void* out = nullptr;
  ScalarKind out_kind = ScalarKind::Bool;
  double masked_value = 0.0;
  int64_t batch = 1, q_len = 0, k_len = 0;
  MaskSpec mask;
};

// out (n,) = ids != pad_id, in the output form above.
struct IdsMaskParams {
  const int64_t* ids = nullptr;
  int64_t n = 0;
  int64_t pad_id = 0;
  void* out = nullptr;
  ScalarKind out_kind = ScalarKind::Bool;
  double masked_value = 0.0;
};

// Masked-language-model selection: position e is selected iff ids[e] is not special and
// uniform(seed, offset, e) < p. Counter-based, so a (seed, offset) pair reproduces the draw.
struct TokenMaskParams {
  const int64_t* ids = nullptr;
  int64_t n = 0;
  int64_t mask_id = 0;
  float p = 0.f;
  const int64_t* special_ids = nullptr;  // on the kernel's device
  int64_t num_special = 0;
  uint64_t seed = 0, offset = 0;
  int64_t* masked_ids = nullptr;
  uint8_t* selected = nullptr;
};

void build_mask_cpu(const MaskBuildParams& p);
void padding_mask_from_ids_cpu(const IdsMaskParams& p);
void random_token_mask_cpu(const TokenMaskParams& p);

void build_mask_cuda(const MaskBuildParams& p, void* stream);
void padding_mask_from_ids_cuda(const IdsMaskParams& p, void* stream);
void random_token_mask_cuda(const TokenMaskParams& p, void* stream);

}  // namespace maskattn
