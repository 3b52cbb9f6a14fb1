// The instruction-set-specific microkernels of the CPU kernels, as one table per path.
//
// Everything else (tile loops, masking, conversions) is one copy compiled for the baseline; only
// the entries of this table (tile products, the attention tiles' softmax steps) differ between paths. cpu_kernels() returns the table of the
// path selected at run time (cpu_isa.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../../scalar_kind.h"
#include "cpu_isa.h"

namespace maskattn {
namespace cpu {

// How a product lands in C: overwrite, add, or add after scaling each row of C (online softmax).
enum class GemmInto { Overwrite, Accumulate, ScaleRowsAccumulate };

struct GemmA {
  const float* p;
  int64_t row_stride, k_stride;
};

// C[0:m, 0:n] (into) A[0:m, 0:K] * B[0:K, 0:n] in fp32; n a multiple of 16; row_scale (m floats)
// is read only for ScaleRowsAccumulate.
using GemmF32Fn = void (*)(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                           int64_t ldc, GemmInto into, const float* row_scale);

// C[0:m, 0:n] (into) alpha * A[0:m, 0:k] * B[0:k, 0:n] with bf16 operands, fp32 accumulation.
//   A: bf16 rows lda elements apart; rows up to round_up(m, 32) must be readable (their values
//      only reach rows of C that are not written); columns k_real..k zero.
//   B: k-pairs: row p (ldb elements) holds (B[2p][j], B[2p + 1][j]) at 2j, 2j + 1 for j < n;
//      rows of k past the real depth zero.
//   k a multiple of 32, n a multiple of 16; row_scale (m floats) read only for ScaleRowsAccumulate.
struct GemmBf16Args {
  int64_t m, n, k;
  const uint16_t* a;
  int64_t lda;
  const uint16_t* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  GemmInto into;
  const float* row_scale;
  float alpha;
};
using GemmBf16Fn = void (*)(const GemmBf16Args&);

// The softmax steps on a tile of scores (attention_softmax_tile.h).
using OnlineSoftmaxFn = void (*)(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                                 float* alpha);
using ProbabilitiesFn = void (*)(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                 const float* log_sum);
// masked_softmax's exp pass over a row (softmax_rows.h): dst = exp(x - shift), returns the sum.
using RowExpSumFn = float (*)(const float* x, int64_t n, float shift, float* dst);
// The decoding forward's out[r] = alpha[r] * out[r] + sum_{j < n} p[r][j] v_j for rows <= 8
// (decode_pv.h): V rows of v_kind at v + v_offset, ldv elements apart; dv a multiple of 8.
struct DecodePvArgs {
  int64_t rows, n;
  const float* p;
  int64_t ldp;
  ScalarKind v_kind;
  const void* v;
  int64_t v_offset, ldv, dv;
  float* out;
  int64_t ldo;
  const float* alpha;
};
using DecodePvFn = void (*)(const DecodePvArgs&);
// Rows converted between fp32 and fp16 / bf16 bits (attention_rows.h): dst = mul * src, n elements.
using StoreRow16Fn = void (*)(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst);
using LoadRow16Fn = void (*)(ScalarKind kind, const uint16_t* src, int64_t n, float mul, float* dst);
// fp32 tiles rounded into the bf16 operand layouts (bf16_tiles.h).
using RoundTileFn = void (*)(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst, int64_t ldd);

struct CpuKernels {
  CpuIsa isa;
  GemmF32Fn gemm_f32;
  const char* gemm_f32_isa;  // the instructions gemm_f32 runs, for build_info and the bench
  GemmBf16Fn gemm_bf16;      // null: bf16 inputs are widened to fp32 and use gemm_f32
  const char* gemm_bf16_isa;
  void (*tiles_begin)();  // around a run of gemm_bf16 calls on one thread (AMX: load the tile
  void (*tiles_end)();    // configuration once); null where nothing needs configuring
  OnlineSoftmaxFn online_softmax_tile;
  ProbabilitiesFn probabilities_from_stats;
  const char* softmax_isa;  // null: the baseline's vectors
  RoundTileFn round_rows_to_bf16;     // null: bf16_tiles.h's, in the baseline's vectors
  RoundTileFn round_pairs_over_rows;
  RowExpSumFn row_exp_sum;            // null: softmax_rows.h's, in the baseline's vectors
  DecodePvFn decode_pv;
  const char* decode_pv_isa;
  StoreRow16Fn store_row16;  // null: attention_rows.h's, in the baseline's vectors
  LoadRow16Fn load_row16;
};

// Brackets a run of gemm_bf16 calls on this thread.
class MatrixUnitScope {
 public:
  explicit MatrixUnitScope(const CpuKernels& k, bool active) : end_(active ? k.tiles_end : nullptr) {
    if (active && k.tiles_begin) k.tiles_begin();
  }
  ~MatrixUnitScope() {
    if (end_) end_();
  }
  MatrixUnitScope(const MatrixUnitScope&) = delete;
  MatrixUnitScope& operator=(const MatrixUnitScope&) = delete;

 private:
  void (*end_)();
};

// The table of the selected path.
const CpuKernels& cpu_kernels();

// On the AVX2 path, multiply bf16 inputs as k-pairs (the AVX512-BF16 / AMX operand layouts) instead
// of widening them: slower there, it lets tests run those layouts on CPUs without bf16 units.
void use_avx2_bf16_pairs(bool on);

// Which instructions each CPU kernel runs on the selected path (build_info, the bench).
struct KernelPath {
  std::string kernel, instructions;
};
std::vector<KernelPath> cpu_kernel_paths();

// Per-path entries (defined in gemm_<type>_<isa>.cpp; call only where the CPU supports the path).
void gemm_f32_avx2(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                   int64_t ldc, GemmInto into, const float* row_scale);
void gemm_f32_avx512(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                     int64_t ldc, GemmInto into, const float* row_scale);
void online_softmax_tile_avx2(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                              float* alpha);
void online_softmax_tile_avx512(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                                float* alpha);
void probabilities_from_stats_avx2(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                   const float* log_sum);
void probabilities_from_stats_avx512(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                     const float* log_sum);
float row_exp_sum_avx512(const float* x, int64_t n, float shift, float* dst);
void round_rows_to_bf16_avx512bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                   int64_t ldd);
void round_pairs_over_rows_avx512bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                      int64_t ldd);
void decode_pv_avx2(const DecodePvArgs& a);
void decode_pv_avx512(const DecodePvArgs& a);
void gemm_bf16_avx2(const GemmBf16Args& g);
void gemm_bf16_avx512(const GemmBf16Args& g);
void store_row16_avx512(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst);
void store_row16_avx512bf16(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst);
void load_row16_avx512(ScalarKind kind, const uint16_t* src, int64_t n, float mul, float* dst);
void gemm_bf16_amx(const GemmBf16Args& g);
void amx_tiles_begin();
void amx_tiles_end();
// A test build (MASKATTN_EMULATE_AMX) runs the AMX kernel's tile instructions in software
// (amx_emulation.h); the count of tile products it executed proves that kernel ran.
bool amx_emulated();
int64_t amx_emulated_tile_products();

}  // namespace cpu
}  // namespace maskattn
