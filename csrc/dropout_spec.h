// Attention dropout as a pure function of the position, shared by every kernel on every device:
// the forward, the backward (which regenerates the decisions instead of storing them) and the
// debug op that materialises them all see the same keep mask for one (seed, offset).
//
// Element e = ((b * heads + h) * q_len + i) * k_len + j of the (batch, heads, q_len, k_len)
// probabilities draws 16 bits: Philox4x32-10 under key `seed` at counter (e / 8, offset) gives
// 128 bits, 16 for each of the elements 8 * (e / 8) .. + 7 (word (e % 8) / 2, low half for even
// e). The element is kept iff its 16 bits are >= threshold = round(p * 65536), so p is resolved
// to a multiple of 2^-16; kept probabilities are scaled by 1 / (1 - p). The index never depends
// on tile sizes or thread layout, which is what makes CPU and CUDA agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "philox.h"

namespace maskattn {

constexpr int kDropoutGroup = 8;  // elements sharing one Philox call

struct DropoutSpec {
  bool enabled = false;
  uint64_t seed = 0, offset = 0;
  uint32_t threshold = 0;  // keep iff the element's 16 bits >= threshold (65536: keep nothing)
  double scale = 1.0;      // 1 / (1 - p) for a kept probability; 0 when p = 1
  int64_t heads = 1, q_len = 0, k_len = 0;

  MA_HD uint64_t element(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return (uint64_t)(((b * heads + h) * q_len + i) * k_len + j);
  }
  // The 16 bits of element e from the Philox words of its group.
  MA_HD static uint32_t bits_of(const Philox4& w, uint64_t e) {
    // selects, not an indexed load: a runtime index would put the words in GPU local memory
    const uint32_t k = (uint32_t)(e % kDropoutGroup) / 2;
    const uint32_t word = k == 0 ? w.word[0] : k == 1 ? w.word[1] : k == 2 ? w.word[2] : w.word[3];
    return (e & 1) ? word >> 16 : word & 0xffffu;
  }
  MA_HD bool keeps_element(uint64_t e) const {
    return !enabled || bits_of(philox4x32(seed, offset, e / kDropoutGroup), e) >= threshold;
  }
  MA_HD bool keeps(int64_t b, int64_t h, int64_t i, int64_t j) const { return keeps_element(element(b, h, i, j)); }
};

// The spec of dropout probability p (in [0, 1]) over a (heads, q_len, k_len) problem.
inline DropoutSpec make_dropout_spec(double p, uint64_t seed, uint64_t offset, int64_t heads, int64_t q_len,
                                     int64_t k_len) {
  DropoutSpec d;
  d.enabled = p > 0.0;
  d.seed = seed;
  d.offset = offset;
  d.threshold = (uint32_t)std::llround(p * 65536.0);
  d.scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  d.heads = heads;
  d.q_len = q_len;
  d.k_len = k_len;
  return d;
}

}  // namespace maskattn
