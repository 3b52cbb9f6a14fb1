// The CPU attention paths by math precision; attention_entry.cpp picks one per call.
#pragma once
#include <cstdint>

#include "../attention.h"

namespace maskattn {
namespace cpu {

// fp32, fp16, bf16 inputs: tiled, vectorised, fp32 math.
void attention_fwd_f32_math(const AttentionFwdParams& p);
void attention_bwd_f32_math(const AttentionBwdParams& p);
int64_t attention_bwd_workspace_floats_f32_math(const AttentionBwdParams& p);
// The forward for at most 16 query rows per kv head (decoding), K/V read in place.
bool attention_fwd_decode_applies(const AttentionFwdParams& p);
void attention_fwd_decode(const AttentionFwdParams& p);

// Whether bf16 inputs are multiplied as bf16 (k-pairs on the CPU's bf16 units: cpu_kernels.h)
// rather than widened to fp32: where the path has such units, outside the decode forward (whose
// scores are dot products). The forward and the backward decide alike, so the backward recomputes
// the forward's scores bit for bit.
bool uses_bf16_products(const AttentionFwdParams& p);

// float64 inputs: double math row by row, the path torch.autograd.gradcheck exercises.
void attention_fwd_f64(const AttentionFwdParams& p);
void attention_bwd_f64(const AttentionBwdParams& p);

}  // namespace cpu
}  // namespace maskattn
