// Launchers of the gcgan CUDA kernels. This header and the .cu files include only
// CUDA headers, so the kernels compile with plain nvcc (no torch); torch's headers
// stay in bindings.cpp, which checks tensors and calls these.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace gcgan {

// Element types the kernels handle. Accumulation is in float (double for F64).
enum class DType { F32, F64, F16, BF16 };

struct Upfirdn2dParams {
  int64_t planes;  // N * C
  int in_h, in_w;
  int out_h, out_w;
  int up_x, up_y;
  int down_x, down_y;
  int pad_x0, pad_y0;  // the far-side pads only shape out_h / out_w
  int kernel_h, kernel_w;
};

// x: [planes, in_h, in_w] of `dtype`; kernel: [kernel_h, kernel_w] of the accumulation
// type (float, or double for F64); y: [planes, out_h, out_w] of `dtype`. All contiguous.
cudaError_t upfirdn2d_launch(DType dtype, const void* x, const void* kernel, void* y,
                             const Upfirdn2dParams& p, cudaStream_t stream);

// y = scale * leaky_relu(x + bias[c], slope) for x viewed as [outer, channels, inner];
// bias may be null.
cudaError_t fused_bias_act_launch(DType dtype, const void* x, const void* bias, void* y,
                                  int64_t numel, int64_t channels, int64_t inner,
                                  double slope, double scale, cudaStream_t stream);

// grad_in = grad * scale * (out > 0 ? 1 : slope), elementwise.
cudaError_t fused_bias_act_grad_launch(DType dtype, const void* grad, const void* out,
                                       void* grad_in, int64_t numel, double slope,
                                       double scale, cudaStream_t stream);

// Largest kernel (taps) upfirdn2d accepts; its taps live in shared memory.
constexpr int kMaxKernelTaps = 64 * 64;

}  // namespace gcgan
