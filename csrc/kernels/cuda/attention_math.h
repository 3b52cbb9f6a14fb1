// Constants of the base-2 softmax every attention kernel runs: scores are scaled by log2(e) so
// exp2 replaces exp, and ln(2) turns a base-2 log-sum-exp back into the natural one.
#pragma once

namespace maskattn {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

}  // namespace attn
}  // namespace maskattn
