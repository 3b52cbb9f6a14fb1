#include "gemm_self_check.h"

#include "bf16_tiles.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace maskattn {
namespace cpu {
namespace {

// bf16 bits of a small integer (exact: at most 8 significant bits)
uint16_t bf16_of(int v) {
  const float f = (float)v;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return (uint16_t)(bits >> 16);
}

struct Problem {
  // m rows (A readable to a multiple of 32), n a multiple of 16 but not of 32, depth k_real padded to k
  static constexpr int64_t m = 37, n = 48, k = 64, k_real = 50, lda = 72, ldb = 2 * 48 + 16, ldc = 56;
  std::vector<uint16_t> a = std::vector<uint16_t>(64 * lda, 0);
  std::vector<uint16_t> b = std::vector<uint16_t>((k / 2) * ldb, 0);
  std::vector<int> a_int = std::vector<int>(m * k, 0), b_int = std::vector<int>(k * n, 0);
  std::vector<float> row_scale = std::vector<float>(m);

  Problem() {
    for (int64_t r = 0; r < 64; ++r)
      for (int64_t c = 0; c < k_real; ++c) {
        const int v = (int)((r * 7 + c * 3) % 9) - 4;  // rows past m hold values too: they must not reach C
        a[r * lda + c] = bf16_of(v);
        if (r < m) a_int[r * k + c] = v;
      }
    for (int64_t p = 0; p < k_real; ++p)
      for (int64_t j = 0; j < n; ++j) {
        const int v = (int)((p * 5 + j * 11) % 7) - 3;
        b[(p / 2) * ldb + 2 * j + (p % 2)] = bf16_of(v);
        b_int[p * n + j] = v;
      }
    for (int64_t r = 0; r < m; ++r) row_scale[r] = (r % 3 == 0) ? 0.5f : (r % 3 == 1 ? 2.f : 0.f);
  }

  float initial(int64_t r, int64_t j) const { return (float)((int)((r + 2 * j) % 5) - 2); }

  float expected(GemmInto into, float alpha, int64_t r, int64_t j) const {
    int64_t dot = 0;
    for (int64_t p = 0; p < k_real; ++p) dot += (int64_t)a_int[r * k + p] * b_int[p * n + j];
    const float product = alpha * (float)dot;
    switch (into) {
      case GemmInto::Overwrite: return product;
      case GemmInto::Accumulate: return initial(r, j) + product;
      case GemmInto::ScaleRowsAccumulate: return initial(r, j) * row_scale[r] + product;
    }
    return product;
  }
};

}  // namespace

bool gemm_bf16_self_check(GemmBf16Fn fn) {
  const Problem pb;
  constexpr float kSentinel = 12345.f;  // columns past n and rows past m must keep it
  for (GemmInto into : {GemmInto::Overwrite, GemmInto::Accumulate, GemmInto::ScaleRowsAccumulate})
    for (float alpha : {1.f, 0.5f}) {
      std::vector<float> c((size_t)(Problem::m + 1) * Problem::ldc, kSentinel);
      for (int64_t r = 0; r < Problem::m; ++r)
        for (int64_t j = 0; j < Problem::n; ++j) c[r * Problem::ldc + j] = pb.initial(r, j);
      const GemmBf16Args args{Problem::m,  Problem::n, Problem::k, pb.a.data(),  Problem::lda, pb.b.data(),
                              Problem::ldb, c.data(),  Problem::ldc, into,       pb.row_scale.data(), alpha};
      fn(args);
      for (int64_t r = 0; r <= Problem::m; ++r)
        for (int64_t j = 0; j < Problem::ldc; ++j) {
          const bool inside = r < Problem::m && j < Problem::n;
          const float want = inside ? pb.expected(into, alpha, r, j) : kSentinel;
          if (!(c[r * Problem::ldc + j] == want)) return false;
        }
    }
  return true;
}

bool bf16_rounding_self_check(RoundTileFn rows_fn, RoundTileFn pairs_fn) {
  // 37 rows of 48 values (the pair layout pads to 64 rows): ties to even both ways, values just
  // past and short of a tie, signs, 0, infinities, NaN, the largest and smallest normal floats
  constexpr int64_t rows = 37, cols = 48, lds = 56, ld_rows = 72, ld_pairs = 2 * 64;
  std::vector<float> src((size_t)rows * lds, 0.f);
  const float specials[] = {0.f, -0.f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::min(), -std::numeric_limits<float>::min()};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      uint32_t bits = 0x3f800000u + (uint32_t)(i * 2654435761u % 0x7fffffu);  // [1, 2): low bits vary
      if (i % 5 == 0) bits = (bits & 0xffff0000u) | 0x8000u;                 // an exact tie
      if (i % 7 == 0) bits ^= 0x80000000u;
      bits += (uint32_t)((i % 11) * 0x1000000u);                             // exponents up to 2^10
      std::memcpy(&src[r * lds + c], &bits, sizeof(bits));
      if (i % 13 == 0) src[r * lds + c] = specials[(i / 13) % 8];
    }
  auto same = [](const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      const bool nan_a = (a[i] & 0x7fffu) > 0x7f80u, nan_b = (b[i] & 0x7fffu) > 0x7f80u;
      if (nan_a != nan_b || (!nan_a && a[i] != b[i])) return false;
    }
    return true;
  };
  std::vector<uint16_t> want((size_t)rows * ld_rows, 0xffffu), got = want;
  round_rows_to_bf16(src.data(), rows, cols, lds, want.data(), ld_rows);
  rows_fn(src.data(), rows, cols, lds, got.data(), ld_rows);
  if (!same(want, got)) return false;
  want.assign((size_t)32 * ld_pairs, 0xffffu), got = want;
  round_pairs_over_rows(src.data(), rows, cols, lds, want.data(), ld_pairs);
  pairs_fn(src.data(), rows, cols, lds, got.data(), ld_pairs);
  return same(want, got);
}

}  // namespace cpu
}  // namespace maskattn
