// Qualifiers that let one inline function serve g++ (CPU kernels) and nvcc (CUDA kernels).
#pragma once

#if defined(__CUDACC__)
#define MA_HD __host__ __device__ __forceinline__
#else
#define MA_HD inline
#endif
