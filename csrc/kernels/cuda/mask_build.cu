// CUDA mask construction: the MaskSpec predicate materialised, ids compared with pad_id, and
// masked-language-model tokens drawn with the counter-based Philox shared with the CPU kernel.
#include "../../token_selection.h"
#include "../mask_build.h"
#include "cuda_common.cuh"
#include "mask_store.cuh"

namespace maskattn {
namespace {

using namespace gpu;

constexpr int kMaskThreads = 256;

// Each thread writes 16 bytes of one output row: 16 bools, 8 halves, 4 floats or 2 doubles.
template <typename Bits>
__global__ void __launch_bounds__(kMaskThreads)
    build_mask_kernel(const MaskBuildParams p, const MaskBits<Bits> bits, bool vec_ok) {
  constexpr int kCount = 16 / (int)sizeof(Bits);
  const MaskSpec& m = p.mask;
  const bool elementwise = m.has_elementwise();
  const int64_t groups_per_row = (p.k_len + kCount - 1) / kCount;
  const int64_t groups = p.batch * p.q_len * groups_per_row;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < groups; t += step) {
    const int64_t row = t / groups_per_row, j0 = (t - row * groups_per_row) * kCount;
    const int64_t b = row / p.q_len, i = row - b * p.q_len;
    const KeyRange range = m.key_range(b, i);
    Bits v[kCount];
#pragma unroll
    for (int k = 0; k < kCount; ++k) {
      const int64_t j = j0 + k;
      const bool in_band = j >= range.begin && j < range.end && j < p.k_len;
      v[k] = in_band && (!elementwise || m.allowed_in_range(b, 0, i, j)) ? bits.allowed : bits.masked;
    }
    store_group(static_cast<Bits*>(p.out) + row * p.k_len, j0, p.k_len, vec_ok, v);
  }
}

template <typename Bits>
__global__ void __launch_bounds__(kMaskThreads)
    padding_mask_from_ids_kernel(const IdsMaskParams p, const MaskBits<Bits> bits, bool ids_vec_ok, bool out_vec_ok) {
  constexpr int kCount = 16 / (int)sizeof(Bits);
  static_assert(kCount % 2 == 0, "ids are read two at a time");
  const int64_t groups = (p.n + kCount - 1) / kCount;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < groups; t += step) {
    const int64_t e0 = t * kCount;
    Bits v[kCount];
    if (ids_vec_ok && e0 + kCount <= p.n) {
#pragma unroll
      for (int k = 0; k < kCount; k += 2) {
        const longlong2 pair = *reinterpret_cast<const longlong2*>(p.ids + e0 + k);
        v[k] = pair.x != p.pad_id ? bits.allowed : bits.masked;
        v[k + 1] = pair.y != p.pad_id ? bits.allowed : bits.masked;
      }
    } else {
#pragma unroll
      for (int k = 0; k < kCount; ++k) v[k] = e0 + k < p.n && p.ids[e0 + k] != p.pad_id ? bits.allowed : bits.masked;
    }
    store_group(static_cast<Bits*>(p.out), e0, p.n, out_vec_ok, v);
  }
}

__global__ void __launch_bounds__(kMaskThreads) random_token_mask_kernel(const TokenMaskParams p) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.n; e += step) select_token(p, e);
}

template <typename Bits>
void launch_build_mask(const MaskBuildParams& p, cudaStream_t stream) {
  constexpr int kCount = 16 / (int)sizeof(Bits);
  const bool vec_ok = is_aligned16(p.out) && (p.k_len * (int64_t)sizeof(Bits)) % 16 == 0;
  const int64_t groups = p.batch * p.q_len * ((p.k_len + kCount - 1) / kCount);
  launch_kernel("build_mask_kernel", build_mask_kernel<Bits>, grid_blocks(groups, kMaskThreads), kMaskThreads, 0,
                stream, p, make_mask_bits<Bits>(p.out_kind, p.masked_value), vec_ok);
}

template <typename Bits>
void launch_padding_mask_from_ids(const IdsMaskParams& p, cudaStream_t stream) {
  constexpr int kCount = 16 / (int)sizeof(Bits);
  const int64_t groups = (p.n + kCount - 1) / kCount;
  launch_kernel("padding_mask_from_ids_kernel", padding_mask_from_ids_kernel<Bits>, grid_blocks(groups, kMaskThreads),
                kMaskThreads, 0, stream, p, make_mask_bits<Bits>(p.out_kind, p.masked_value), is_aligned16(p.ids),
                is_aligned16(p.out));
}

}  // namespace

void build_mask_cuda(const MaskBuildParams& p, void* stream) {
  if (p.batch <= 0 || p.q_len <= 0 || p.k_len <= 0) return;
  const cudaStream_t s = as_cuda_stream(stream);
  switch (mask_elem_bytes(p.out_kind)) {
    case 1: launch_build_mask<uint8_t>(p, s); break;
    case 2: launch_build_mask<uint16_t>(p, s); break;
    case 4: launch_build_mask<uint32_t>(p, s); break;
    default: launch_build_mask<uint64_t>(p, s); break;
  }
}

void padding_mask_from_ids_cuda(const IdsMaskParams& p, void* stream) {
  if (p.n <= 0) return;
  const cudaStream_t s = as_cuda_stream(stream);
  switch (mask_elem_bytes(p.out_kind)) {
    case 1: launch_padding_mask_from_ids<uint8_t>(p, s); break;
    case 2: launch_padding_mask_from_ids<uint16_t>(p, s); break;
    case 4: launch_padding_mask_from_ids<uint32_t>(p, s); break;
    default: launch_padding_mask_from_ids<uint64_t>(p, s); break;
  }
}

void random_token_mask_cuda(const TokenMaskParams& p, void* stream) {
  if (p.n <= 0) return;
  launch_kernel("random_token_mask_kernel", random_token_mask_kernel, grid_blocks(p.n, kMaskThreads), kMaskThreads,
                0, as_cuda_stream(stream), p);
}

}  // namespace maskattn
