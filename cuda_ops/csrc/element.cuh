// Loading and storing the kernels' element types through their accumulation type.
// CUDA headers only (see kernels.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gcgan {

template <typename T>
struct Element;

template <>
struct Element<float> {
  using Acc = float;
  static __device__ __forceinline__ Acc load(const float* p) { return __ldg(p); }
  static __device__ __forceinline__ void store(float* p, Acc v) { *p = v; }
};

template <>
struct Element<double> {
  using Acc = double;
  static __device__ __forceinline__ Acc load(const double* p) { return __ldg(p); }
  static __device__ __forceinline__ void store(double* p, Acc v) { *p = v; }
};

template <>
struct Element<__half> {
  using Acc = float;
  static __device__ __forceinline__ Acc load(const __half* p) { return __half2float(__ldg(p)); }
  static __device__ __forceinline__ void store(__half* p, Acc v) { *p = __float2half_rn(v); }
};

template <>
struct Element<__nv_bfloat16> {
  using Acc = float;
  static __device__ __forceinline__ Acc load(const __nv_bfloat16* p) {
    return __bfloat162float(__ldg(p));
  }
  static __device__ __forceinline__ void store(__nv_bfloat16* p, Acc v) {
    *p = __float2bfloat16_rn(v);
  }
};

// Blocks for a grid-stride loop over `n` items: enough to fill the GPU, never more
// than the items need.
inline unsigned int grid_blocks(long long n, int threads) {
  long long blocks = (n + threads - 1) / threads;
  const long long cap = 1LL << 20;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

}  // namespace gcgan
