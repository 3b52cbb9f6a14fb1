// The launches of the tensor-core forward kernel, as templates: each .cu that instantiates
// launch_fwd_tc for one element type compiles its kernels (one type a file, so the two build
// in parallel).
#pragma once
#include <algorithm>
#include <stdexcept>

#include "attention_fwd_tc.cuh"
#include "attention_launch.h"

namespace maskattn {
namespace attn {

constexpr int kMaxKeySplits = 32;       // the merge kernel holds one run a lane
constexpr int64_t kMinKeysPerSplit = 256;  // a run streams at least this many keys

// 0: the whole-row kernel runs; n >= 1: the key-split kernel (its own, smaller query blocks)
// runs the keys of each query block in n runs, merged after. From the shapes and the GPU only,
// never the lengths' values: the workspace is sized on the host by the same rule.
template <int HD>
inline int key_splits_of(const AttentionFwdParams& p, const DeviceInfo& dev) {
  using Whole = FwdTcConfig<HD, false>;
  using Split = FwdTcConfig<HD, true>;
  const int64_t blocks = ceil_div(p.q_len, Whole::kRows) * p.batch * p.heads;
  if (blocks <= 0 || dev.sms <= 0) return 0;
  // query rows that fill less than half a whole-row block (decoding) take the smaller blocks
  const bool few_rows = Split::kRows < Whole::kRows && p.q_len <= Split::kRows;
  if (blocks >= dev.sms && !few_rows) return 0;
  const int64_t split_blocks = ceil_div(p.q_len, Split::kRows) * p.batch * p.heads;
  const int64_t runs_by_keys = ceil_div(p.k_len, Split::kKeys) / ceil_div(kMinKeysPerSplit, Split::kKeys);
  const int64_t runs_by_sms = dev.sms / split_blocks;
  const int64_t runs = std::max<int64_t>(1, std::min<int64_t>({runs_by_keys, runs_by_sms, (int64_t)kMaxKeySplits}));
  // one run only pays for the merge where the smaller blocks are the point
  return runs > 1 || few_rows ? (int)runs : 0;
}

template <typename Elem, int HD, bool kSplitKeys>
inline void launch_fwd_tc_kernel(const AttentionFwdParams& p, int runs, const DeviceInfo& dev, cudaStream_t stream) {
  using Cfg = FwdTcConfig<HD, kSplitKeys>;
  static_assert(Cfg::kSmemBytes <= 99 * 1024, "must fit every sm_80+ GPU");
  const int64_t q_tiles = ceil_div(p.q_len, Cfg::kRows);
  auto* kernel = attention_fwd_tc_kernel<Elem, HD, kSplitKeys>;
  allow_dynamic_smem(kernel, Cfg::kSmemBytes, dev, "attention_fwd_tc_kernel");
  gpu::launch_kernel("attention_fwd_tc_kernel", kernel,
                     grid_of(q_tiles * p.batch * p.heads * runs, "attention_fwd_tc_kernel"), Cfg::kThreads,
                     Cfg::kSmemBytes, stream, p, q_tiles, later_query_tiles_heavier(p.mask), runs);
}

template <typename Elem, int HD>
inline void launch_fwd_tc_bucket(const AttentionFwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  // the caller sized the workspace with the same rule; without one the whole-row kernel runs
  const int splits = p.workspace_f32 != nullptr ? key_splits_of<HD>(p, dev) : 0;
  if (splits == 0) return launch_fwd_tc_kernel<Elem, HD, false>(p, 1, dev, stream);
  launch_fwd_tc_kernel<Elem, HD, true>(p, splits, dev, stream);
  gpu::launch_kernel("attention_fwd_merge_kernel", attention_fwd_merge_kernel<Elem, HD>,
                     grid_of(ceil_div(p.batch * p.heads * p.q_len, 4), "attention_fwd_merge_kernel"), 128, 0, stream,
                     p, splits);
}

template <typename Elem>
void launch_fwd_tc(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev, cudaStream_t stream) {
  switch (bucket) {
    case 64: return launch_fwd_tc_bucket<Elem, 64>(p, dev, stream);
    case 128: return launch_fwd_tc_bucket<Elem, 128>(p, dev, stream);
    case 256: return launch_fwd_tc_bucket<Elem, 256>(p, dev, stream);
    default: throw std::runtime_error("maskattn attention: no tensor-core forward for " + dims_text(p));
  }
}

}  // namespace attn
}  // namespace maskattn
