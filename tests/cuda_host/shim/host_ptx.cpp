// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16} and ldmatrix.sync.aligned.m8n8.x4[.trans].b16
// as warp collectives. Every lane's registers map to matrix elements by the PTX ISA's tables
// ("Matrix Fragments for mma.m16n8k16 with floating point type", "ldmatrix"); with
// g = lane / 4 and t = lane % 4, elements of a register are listed low half first.
#include <cstring>
#include <vector>

#include "attention_mma_host.h"
#include "cuda_runtime.h"

namespace cuda_host {
namespace {

struct MmaIn {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

// Every 16-bit pattern as a float, built once: the mma's 384 conversions per call stay cheap.
const float* half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(1 << 16);
    for (uint32_t b = 0; b < (1u << 16); ++b) t[b] = __half2float(__half{(uint16_t)b});
    return t;
  }();
  return table.data();
}

inline float element(uint32_t reg, int high, bool bf16, const float* halves) {
  const uint16_t bits = (uint16_t)(high ? reg >> 16 : reg & 0xffffu);
  return bf16 ? __bfloat162float(__nv_bfloat16{bits}) : halves[bits];
}

template <bool kBf16>
void combine_mma(WarpSlots& s, unsigned mask) {
  if (mask != 0xffffffffu) fault("mma.sync.aligned needs all 32 lanes, mask 0x%08x", mask);
  const float* halves = half_table();
  float a[16][16], bt[8][16], c[16][8];  // B stored transposed: rows of bt are the columns of B
  for (int lane = 0; lane < 32; ++lane) {
    MmaIn in;
    std::memcpy(&in, s.in[lane], sizeof(in));
    const int g = lane >> 2, t = lane & 3;
    // A a0..a7: row g for a0, a1, a4, a5 and g + 8 otherwise; col 2t + (i & 1), + 8 from a4 on
    for (int i = 0; i < 8; ++i)
      a[g + ((i >> 1) & 1) * 8][2 * t + (i & 1) + (i >= 4 ? 8 : 0)] = element(in.a[i >> 1], i & 1, kBf16, halves);
    // B b0..b3: row (k) 2t + (i & 1), + 8 from b2 on; col (n) g
    for (int i = 0; i < 4; ++i) bt[g][2 * t + (i & 1) + (i >= 2 ? 8 : 0)] = element(in.b[i >> 1], i & 1, kBf16, halves);
    // C c0..c3: row g, + 8 from c2 on; col 2t + (i & 1)
    for (int i = 0; i < 4; ++i) c[g + (i >= 2 ? 8 : 0)][2 * t + (i & 1)] = in.c[i];
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    float d[4];
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
      double acc = c[row][col];
      for (int k = 0; k < 16; ++k) acc += (double)a[row][k] * bt[col][k];  // exact products of 16-bit floats
      d[i] = (float)acc;
    }
    std::memcpy(s.out[lane], d, sizeof(d));
  }
}

template <bool kTrans>
void combine_ldmatrix_x4(WarpSlots& s, unsigned mask) {
  if (mask != 0xffffffffu) fault("ldmatrix.sync.aligned needs all 32 lanes, mask 0x%08x", mask);
  uint16_t m[4][8][8];  // lanes 8j..8j+7 give the addresses of rows 0..7 of matrix j
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t addr;
    std::memcpy(&addr, s.in[lane], sizeof(addr));
    if (addr % 16) fault("ldmatrix: row address 0x%x of lane %d is not 16-byte aligned", addr, lane);
    std::memcpy(m[lane >> 3][lane & 7], shared_window(addr, 16, "ldmatrix row"), 16);
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    uint32_t r[4];
    for (int j = 0; j < 4; ++j) {
      // each lane holds (row g, cols 2t, 2t + 1); .trans hands out the transposed matrix
      const uint16_t lo = kTrans ? m[j][2 * t][g] : m[j][g][2 * t];
      const uint16_t hi = kTrans ? m[j][2 * t + 1][g] : m[j][g][2 * t + 1];
      r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    std::memcpy(s.out[lane], r, sizeof(r));
  }
}

const char kMmaF16[] = "mma.sync.m16n8k16.f16", kMmaBf16[] = "mma.sync.m16n8k16.bf16";
const char kLdmatrix[] = "ldmatrix.x4", kLdmatrixTrans[] = "ldmatrix.x4.trans";

}  // namespace

void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool bf16) {
  MmaIn in;
  std::memcpy(in.a, a, sizeof(in.a));
  in.b[0] = b0;
  in.b[1] = b1;
  std::memcpy(in.c, d, sizeof(in.c));
  if (bf16) warp_collective(kMmaBf16, 0xffffffffu, &in, sizeof(in), d, sizeof(d), &combine_mma<true>);
  else warp_collective(kMmaF16, 0xffffffffu, &in, sizeof(in), d, sizeof(d), &combine_mma<false>);
}

void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr, bool trans) {
  if (trans) warp_collective(kLdmatrixTrans, 0xffffffffu, &addr, sizeof(addr), r, sizeof(r), &combine_ldmatrix_x4<true>);
  else warp_collective(kLdmatrix, 0xffffffffu, &addr, sizeof(addr), r, sizeof(r), &combine_ldmatrix_x4<false>);
}

}  // namespace cuda_host
