// fused_bias_act: bias add, leaky ReLU and gain in one elementwise pass, and its
// gradient. The arithmetic follows the reference's order (add, activate, scale;
// grad * scale, then * slope) so fp32 results match it bit for bit.
#include "element.cuh"
#include "kernels.h"

namespace gcgan {
namespace {

template <typename T, typename Index>
__global__ void fused_bias_act_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                                      T* __restrict__ y, Index numel, Index channels,
                                      Index inner, typename Element<T>::Acc slope,
                                      typename Element<T>::Acc scale) {
  using Acc = typename Element<T>::Acc;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += stride) {
    Acc v = Element<T>::load(x + i);
    if (bias != nullptr) v += Element<T>::load(bias + (i / inner) % channels);
    v = v > Acc(0) ? v : v * slope;
    Element<T>::store(y + i, v * scale);
  }
}

template <typename T, typename Index>
__global__ void fused_bias_act_grad_kernel(const T* __restrict__ grad, const T* __restrict__ out,
                                           T* __restrict__ grad_in, Index numel,
                                           typename Element<T>::Acc slope,
                                           typename Element<T>::Acc scale) {
  using Acc = typename Element<T>::Acc;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += stride) {
    Acc g = Element<T>::load(grad + i) * scale;
    if (!(Element<T>::load(out + i) > Acc(0))) g *= slope;
    Element<T>::store(grad_in + i, g);
  }
}

constexpr int kThreads = 256;

template <typename T>
cudaError_t launch_act(const void* x, const void* bias, void* y, int64_t numel,
                       int64_t channels, int64_t inner, double slope, double scale,
                       cudaStream_t stream) {
  using Acc = typename Element<T>::Acc;
  if (numel == 0) return cudaSuccess;
  const unsigned int blocks = grid_blocks(numel, kThreads);
  const T* xt = static_cast<const T*>(x);
  const T* bt = static_cast<const T*>(bias);
  T* yt = static_cast<T*>(y);
  if (numel < (1LL << 31)) {
    fused_bias_act_kernel<T, int><<<blocks, kThreads, 0, stream>>>(
        xt, bt, yt, static_cast<int>(numel), static_cast<int>(channels),
        static_cast<int>(inner), static_cast<Acc>(slope), static_cast<Acc>(scale));
  } else {
    fused_bias_act_kernel<T, long long><<<blocks, kThreads, 0, stream>>>(
        xt, bt, yt, numel, channels, inner, static_cast<Acc>(slope), static_cast<Acc>(scale));
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_grad(const void* grad, const void* out, void* grad_in, int64_t numel,
                        double slope, double scale, cudaStream_t stream) {
  using Acc = typename Element<T>::Acc;
  if (numel == 0) return cudaSuccess;
  const unsigned int blocks = grid_blocks(numel, kThreads);
  const T* gt = static_cast<const T*>(grad);
  const T* ot = static_cast<const T*>(out);
  T* git = static_cast<T*>(grad_in);
  if (numel < (1LL << 31)) {
    fused_bias_act_grad_kernel<T, int><<<blocks, kThreads, 0, stream>>>(
        gt, ot, git, static_cast<int>(numel), static_cast<Acc>(slope), static_cast<Acc>(scale));
  } else {
    fused_bias_act_grad_kernel<T, long long><<<blocks, kThreads, 0, stream>>>(
        gt, ot, git, numel, static_cast<Acc>(slope), static_cast<Acc>(scale));
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t fused_bias_act_launch(DType dtype, const void* x, const void* bias, void* y,
                                  int64_t numel, int64_t channels, int64_t inner,
                                  double slope, double scale, cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: return launch_act<float>(x, bias, y, numel, channels, inner, slope, scale, stream);
    case DType::F64: return launch_act<double>(x, bias, y, numel, channels, inner, slope, scale, stream);
    case DType::F16: return launch_act<__half>(x, bias, y, numel, channels, inner, slope, scale, stream);
    case DType::BF16:
      return launch_act<__nv_bfloat16>(x, bias, y, numel, channels, inner, slope, scale, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t fused_bias_act_grad_launch(DType dtype, const void* grad, const void* out,
                                       void* grad_in, int64_t numel, double slope,
                                       double scale, cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: return launch_grad<float>(grad, out, grad_in, numel, slope, scale, stream);
    case DType::F64: return launch_grad<double>(grad, out, grad_in, numel, slope, scale, stream);
    case DType::F16: return launch_grad<__half>(grad, out, grad_in, numel, slope, scale, stream);
    case DType::BF16:
      return launch_grad<__nv_bfloat16>(grad, out, grad_in, numel, slope, scale, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace gcgan
