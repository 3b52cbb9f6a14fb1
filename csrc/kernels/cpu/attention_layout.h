// Tile sizes, derived shapes and fp32 scratch of the CPU attention kernels (fp32/fp16/bf16 inputs).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>

#include "../attention.h"
#include "scratch_pool.h"

namespace maskattn {
namespace cpu {

constexpr int64_t kBlockQ = 64;  // query rows per tile (all heads of a tile together, in the forward)
constexpr int64_t kBlockK = 64;  // keys per tile

inline int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct AttentionGeometry {
  int64_t batch, heads, kv_heads, group, q_len, k_len;
  int64_t d, d_pad, dv, dv_pad;  // head sizes and their multiples of 16 (B operands are padded)
  int64_t q_block;               // query rows of one head in a query tile
  int64_t q_tiles, k_tiles;

  int64_t first_row(int64_t qt) const { return qt * q_block; }
  int64_t q_rows_in(int64_t qt) const { return std::min(q_block, q_len - qt * q_block); }
  int64_t keys_in(int64_t kt) const { return std::min(kBlockK, k_len - kt * kBlockK); }
  // Rows / keys of a tile inside the sequence's lengths. Padding past them is never read, so
  // garbage there (e.g. an uninitialised KV cache) cannot turn 0 * NaN into NaN.
  int64_t live_rows_in(const MaskSpec& m, int64_t b, int64_t qt) const {
    return std::max<int64_t>(0, std::min(q_rows_in(qt), m.q_len_of(b) - qt * q_block));
  }
  int64_t live_keys_in(const MaskSpec& m, int64_t b, int64_t kt) const {
    return std::max<int64_t>(0, std::min(keys_in(kt), m.k_len_of(b) - kt * kBlockK));
  }
};

// q_block: query rows per head in a tile (kBlockQ, or less where a tile stacks several heads).
inline AttentionGeometry geometry_of(const AttentionFwdParams& p, int64_t q_block = kBlockQ) {
  AttentionGeometry g;
  g.batch = p.batch, g.heads = p.heads, g.kv_heads = p.kv_heads, g.group = p.heads / p.kv_heads;
  g.q_len = p.q_len, g.k_len = p.k_len;
  g.d = p.head_dim, g.d_pad = round_up16(p.head_dim);
  g.dv = p.v_head_dim, g.dv_pad = round_up16(p.v_head_dim);
  g.q_block = q_block;
  g.q_tiles = ceil_div(p.q_len, q_block), g.k_tiles = ceil_div(p.k_len, kBlockK);
  return g;
}

// Uninitialised, cache-line aligned float buffer (every reader writes before it reads), drawn from
// the scratch pool so repeated calls reuse memory already faulted in.
// Returns a FloatBuffer's block to the pool.
struct ReleaseScratch {
  size_t capacity = 0;
  void operator()(float* p) const { release_scratch(p, capacity); }
};

class FloatBuffer {
 public:
  FloatBuffer() = default;
  explicit FloatBuffer(int64_t n) : data_(acquire(n)) {}
  float* get() const { return data_.get(); }

 private:
  static std::unique_ptr<float, ReleaseScratch> acquire(int64_t n) {
    size_t capacity = 0;
    float* p = static_cast<float*>(acquire_scratch(sizeof(float) * (size_t)std::max<int64_t>(n, 1), &capacity));
    return std::unique_ptr<float, ReleaseScratch>(p, ReleaseScratch{capacity});
  }
  std::unique_ptr<float, ReleaseScratch> data_;
};

}  // namespace cpu
}  // namespace maskattn
