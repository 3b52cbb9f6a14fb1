// How the softmax kernels split rows over threads, by row length (shared by forward and backward):
//   k_len <= 256     one warp per row, 8 keys per lane in registers, 4 rows per block;
//   k_len <= 16384   one block per row (64..1024 threads), 16 keys per thread in registers;
//   longer           one block per row, streamed: a statistics pass, then a normalise+write pass.
#pragma once
#include <cstdint>

#include "cuda_common.cuh"

namespace maskattn {
namespace gpu {

constexpr int kWarpRowKeysPerLane = 8;
constexpr int kWarpRowsPerBlock = 4;
constexpr int kBlockRowKeysPerThread = 16;
constexpr int kBlockRowMinThreads = 64;  // two warps: small blocks would hit the blocks-per-SM limit
constexpr int kBlockRowMaxThreads = 1024;
constexpr int kStreamThreads = 512;

constexpr int64_t kWarpRowMaxKeys = 32 * kWarpRowKeysPerLane;
constexpr int64_t kBlockRowMaxKeys = (int64_t)kBlockRowMaxThreads * kBlockRowKeysPerThread;

enum class RowTier { Warp, Block, Stream };

struct RowLaunch {
  RowTier tier;
  unsigned int blocks;
  unsigned int threads;
};

inline RowLaunch plan_row_launch(int64_t rows, int64_t k_len) {
  if (k_len <= kWarpRowMaxKeys)
    return {RowTier::Warp, grid_blocks(rows, kWarpRowsPerBlock), 32u * kWarpRowsPerBlock};
  if (k_len <= kBlockRowMaxKeys) {
    const int64_t needed = (k_len + kBlockRowKeysPerThread - 1) / kBlockRowKeysPerThread;
    int64_t threads = (needed + 31) / 32 * 32;  // whole warps: the block reduction relies on it
    threads = threads < kBlockRowMinThreads ? kBlockRowMinThreads : threads;
    return {RowTier::Block, grid_blocks(rows, 1), (unsigned int)threads};
  }
  return {RowTier::Stream, grid_blocks(rows, 1), (unsigned int)kStreamThreads};
}

}  // namespace gpu
}  // namespace maskattn
