// The bf16 tile product on AMX tiles (tdpbf16ps): C blocks of up to 32 x 32 fp32 held in four
// tiles, fed by two A tiles (16 rows x 32 bf16) and two B tiles (16 k-pairs x 16 columns) per 32
// values of k. The same k-pair layout of B as the AVX512-BF16 kernel (cpu_kernels.h).
//
// Tiles: tmm0..3 accumulate C (row half i, column half j -> tmm(2i + j)), tmm4/5 hold A, tmm6/7 B;
// every tile is configured 16 rows x 64 bytes once per scope (amx_tiles_begin/end) or per call.
// Called only where cpu_isa.h found AMX-TILE/AMX-BF16 and Linux granted the tile state.
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#if defined(MASKATTN_EMULATE_AMX)
#include "amx_emulation.h"  // test build: the tile instructions in software
#endif

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma,amx-tile,amx-bf16")

namespace maskattn {
namespace cpu {
namespace {

// ldtilecfg's 64-byte operand: palette 1, every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
constexpr TileConfig kTileConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// Set between amx_tiles_begin and amx_tiles_end on this thread: the configuration is loaded.
thread_local bool t_tiles_configured = false;

inline void compiler_barrier() { __asm__ volatile("" ::: "memory"); }

inline void load_tile_config() {
  static const TileConfig config = kTileConfig;  // in memory, so ldtilecfg reads all 64 bytes
  compiler_barrier();
  _tile_loadconfig(&config);
}

// One block of C rows [0, 16 * RA) x columns [0, 16 * RB) (RA, RB in {1, 2}): A rows readable up to
// 16 * RA, B columns up to 16 * RB; only rows < m_valid are written to C.
template <int RA, int RB>
inline void amx_block(const GemmBf16Args& g, int64_t r0, int64_t c0, float* tmp) {
  _tile_zero(0);
  if (RB == 2) _tile_zero(1);
  if (RA == 2) _tile_zero(2);
  if (RA == 2 && RB == 2) _tile_zero(3);
  const long a_stride = (long)(g.lda * 2), b_stride = (long)(g.ldb * 2);
  for (int64_t k0 = 0; k0 < g.k; k0 += 32) {
    const uint16_t* a = g.a + r0 * g.lda + k0;
    const uint16_t* b = g.b + (k0 / 2) * g.ldb + 2 * c0;
    _tile_loadd(4, a, a_stride);
    if (RA == 2) _tile_loadd(5, a + 16 * g.lda, a_stride);
    _tile_loadd(6, b, b_stride);
    if (RB == 2) _tile_loadd(7, b + 32, b_stride);
    _tile_dpbf16ps(0, 4, 6);
    if (RB == 2) _tile_dpbf16ps(1, 4, 7);
    if (RA == 2) _tile_dpbf16ps(2, 5, 6);
    if (RA == 2 && RB == 2) _tile_dpbf16ps(3, 5, 7);
  }
  constexpr long kTmpStride = 32 * sizeof(float);
  _tile_stored(0, tmp, kTmpStride);
  if (RB == 2) _tile_stored(1, tmp + 16, kTmpStride);
  if (RA == 2) _tile_stored(2, tmp + 16 * 32, kTmpStride);
  if (RA == 2 && RB == 2) _tile_stored(3, tmp + 16 * 32 + 16, kTmpStride);
  // into C, row by row, 16 columns at a time
  const int64_t rows = g.m - r0 < 16 * RA ? g.m - r0 : 16 * RA;
  const __m512 alpha = _mm512_set1_ps(g.alpha);
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < RB; ++j) {
      float* cp = g.c + (r0 + r) * g.ldc + c0 + 16 * j;
      __m512 x = _mm512_mul_ps(_mm512_load_ps(tmp + r * 32 + 16 * j), alpha);
      if (g.into == GemmInto::Accumulate) x = _mm512_add_ps(x, _mm512_loadu_ps(cp));
      if (g.into == GemmInto::ScaleRowsAccumulate)
        x = _mm512_fmadd_ps(_mm512_loadu_ps(cp), _mm512_set1_ps(g.row_scale[r0 + r]), x);
      _mm512_storeu_ps(cp, x);
    }
}

}  // namespace

bool amx_emulated() {
#if defined(MASKATTN_EMULATE_AMX)
  return true;
#else
  return false;
#endif
}

int64_t amx_emulated_tile_products() {
#if defined(MASKATTN_EMULATE_AMX)
  return amx_emulation::tile_products().load();
#else
  return 0;
#endif
}

void amx_tiles_begin() {
  load_tile_config();
  t_tiles_configured = true;
}

void amx_tiles_end() {
  t_tiles_configured = false;
  _tile_release();
}

void gemm_bf16_amx(const GemmBf16Args& g) {
  const bool own_scope = !t_tiles_configured;
  if (own_scope) load_tile_config();
  compiler_barrier();  // the tile loads below read A and B, which the asm statements do not declare
  alignas(64) float tmp[32 * 32];
  for (int64_t r0 = 0; r0 < g.m; r0 += 32) {
    const bool two_a = g.m - r0 > 16;
    for (int64_t c0 = 0; c0 < g.n; c0 += 32) {
      const bool two_b = g.n - c0 > 16;
      if (two_a && two_b) amx_block<2, 2>(g, r0, c0, tmp);
      else if (two_a) amx_block<2, 1>(g, r0, c0, tmp);
      else if (two_b) amx_block<1, 2>(g, r0, c0, tmp);
      else amx_block<1, 1>(g, r0, c0, tmp);
    }
  }
  if (own_scope) _tile_release();
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
