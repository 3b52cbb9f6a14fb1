// Software AMX tiles for a test build (MASKATTN_EMULATE_AMX): the tile instructions the AMX kernel
// issues (ldtilecfg, tilerelease, tilezero, tileloadd, tilestored, tdpbf16ps) run as the Intel SDM's
// pseudo-code describes them, so gemm_bf16_amx.cpp and its callers execute (under AddressSanitizer
// in CI: every tile load and store is a checked memcpy) on CPUs without AMX. Where the hardware
// raises #UD or #GP (no configuration, a bad one, operand shapes that do not chain) this aborts.
// Included by gemm_bf16_amx.cpp only, after <immintrin.h>: the intrinsics' names are redefined.
#pragma once
#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace maskattn {
namespace cpu {
namespace amx_emulation {

constexpr int kTiles = 8, kMaxRows = 16, kMaxColsb = 64;

struct TileState {
  bool configured = false;
  uint8_t rows[kTiles] = {};
  uint16_t colsb[kTiles] = {};
  alignas(64) uint8_t data[kTiles][kMaxRows][kMaxColsb] = {};
};

// The tile registers and TILECFG are per thread, as the hardware's (part of the XSAVE state).
inline TileState& state() {
  static thread_local TileState s;
  return s;
}

// tdpbf16ps executed by any thread: tests read it to prove the AMX kernel ran.
inline std::atomic<int64_t>& tile_products() {
  static std::atomic<int64_t> count{0};
  return count;
}

[[noreturn]] inline void fault(const char* instruction, const char* why) {
  std::fprintf(stderr, "maskattn AMX emulation: %s faults (the hardware raises #UD/#GP): %s\n", instruction, why);
  std::abort();
}

inline void clear(TileState& s) {
  s = TileState{};
}

inline void load_config(const void* config) {
  uint8_t c[64];
  std::memcpy(c, config, sizeof(c));  // ldtilecfg reads all 64 bytes
  TileState& s = state();
  if (c[0] == 0) {  // palette 0: back to the initial state
    clear(s);
    return;
  }
  if (c[0] != 1) fault("ldtilecfg", "palette other than 0 and 1");
  for (int i = 2; i < 16; ++i)
    if (c[i] != 0) fault("ldtilecfg", "reserved bytes 2..15 not zero");
  clear(s);
  for (int t = 0; t < 16; ++t) {
    uint16_t colsb;
    std::memcpy(&colsb, c + 16 + 2 * t, sizeof(colsb));
    const uint8_t rows = c[48 + t];
    if (t >= kTiles) {
      if (colsb != 0 || rows != 0) fault("ldtilecfg", "palette 1 has 8 tiles; tiles 8..15 must be zero");
      continue;
    }
    if (rows > kMaxRows || colsb > kMaxColsb) fault("ldtilecfg", "a tile larger than 16 rows x 64 bytes");
    if ((rows == 0) != (colsb == 0)) fault("ldtilecfg", "a tile with rows but no columns (or the reverse)");
    s.rows[t] = rows;
    s.colsb[t] = colsb;
  }
  s.configured = true;
}

inline void release() {
  clear(state());
}

inline TileState& usable(const char* instruction, int t) {
  TileState& s = state();
  if (!s.configured) fault(instruction, "tiles used with no configuration loaded (or after tilerelease)");
  if (t < 0 || t >= kTiles || s.rows[t] == 0) fault(instruction, "a tile the configuration leaves empty");
  return s;
}

inline void zero(int t) {
  TileState& s = usable("tilezero", t);
  std::memset(s.data[t], 0, sizeof(s.data[t]));
}

inline void load(int t, const void* base, long stride) {
  TileState& s = usable("tileloadd", t);
  std::memset(s.data[t], 0, sizeof(s.data[t]));  // bytes past colsb and rows past rows read as zero
  for (int r = 0; r < s.rows[t]; ++r)
    std::memcpy(s.data[t][r], static_cast<const uint8_t*>(base) + (long)r * stride, s.colsb[t]);
}

inline void store(int t, void* base, long stride) {
  TileState& s = usable("tilestored", t);
  for (int r = 0; r < s.rows[t]; ++r) std::memcpy(static_cast<uint8_t*>(base) + (long)r * stride, s.data[t][r], s.colsb[t]);
}

// Denormals in, flushed to zero (DAZ); denormal results too (FTZ); MXCSR is not read.
inline float flush_denormal(float x) {
  return std::fabs(x) < 1.17549435e-38f ? 0.f * x : x;
}

inline float bf16_to_fp32(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return flush_denormal(f);
}

// dst[m][n] += sum over k of a[m][2k] * b[k][2n] + a[m][2k+1] * b[k][2n+1] in fp32, rounded step by
// step as the pseudo-code reads (the hardware's intermediate rounding is not specified bit for bit).
inline void dpbf16ps(int dst, int a, int b) {
  TileState& s = usable("tdpbf16ps", dst);
  usable("tdpbf16ps", a);
  usable("tdpbf16ps", b);
  if (dst == a || dst == b || a == b) fault("tdpbf16ps", "operands must be three different tiles");
  const int m_rows = s.rows[dst], n_cols = s.colsb[dst] / 4, k_pairs = s.colsb[a] / 4;
  if (s.colsb[dst] % 4 != 0 || s.colsb[a] % 4 != 0) fault("tdpbf16ps", "a row of a tile is not whole dwords");
  if (s.rows[a] != m_rows) fault("tdpbf16ps", "src1 rows differ from dst rows");
  if (s.colsb[b] != s.colsb[dst]) fault("tdpbf16ps", "src2 columns differ from dst columns");
  if (s.rows[b] != k_pairs) fault("tdpbf16ps", "src2 rows differ from src1 k-pairs (colsb / 4)");
  for (int m = 0; m < m_rows; ++m) {
    float acc[kMaxColsb / 4];
    std::memcpy(acc, s.data[dst][m], sizeof(acc));
    for (int k = 0; k < k_pairs; ++k)
      for (int n = 0; n < n_cols; ++n) {
        const float lo = bf16_to_fp32(s.data[a][m] + 4 * k) * bf16_to_fp32(s.data[b][k] + 4 * n);
        acc[n] = flush_denormal(acc[n] + lo);
        const float hi = bf16_to_fp32(s.data[a][m] + 4 * k + 2) * bf16_to_fp32(s.data[b][k] + 4 * n + 2);
        acc[n] = flush_denormal(acc[n] + hi);
      }
    std::memset(s.data[dst][m], 0, sizeof(s.data[dst][m]));  // bytes past colsb are zeroed
    std::memcpy(s.data[dst][m], acc, 4 * n_cols);
  }
  tile_products().fetch_add(1, std::memory_order_relaxed);
}

}  // namespace amx_emulation
}  // namespace cpu
}  // namespace maskattn

// The intrinsics the AMX kernel calls, now the software tiles above.
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) ::maskattn::cpu::amx_emulation::load_config(config)
#define _tile_release() ::maskattn::cpu::amx_emulation::release()
#define _tile_zero(t) ::maskattn::cpu::amx_emulation::zero(t)
#define _tile_loadd(t, base, stride) ::maskattn::cpu::amx_emulation::load(t, base, stride)
#define _tile_stored(t, base, stride) ::maskattn::cpu::amx_emulation::store(t, base, stride)
#define _tile_dpbf16ps(dst, a, b) ::maskattn::cpu::amx_emulation::dpbf16ps(dst, a, b)
