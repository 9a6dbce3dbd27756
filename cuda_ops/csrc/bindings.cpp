// Torch bindings of the gcgan kernels: argument checks, dtype mapping, allocation,
// the current stream. The only file here that includes torch's headers.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "kernels.h"

namespace {

gcgan::DType element_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return gcgan::DType::F32;
    case torch::kFloat64: return gcgan::DType::F64;
    case torch::kFloat16: return gcgan::DType::F16;
    case torch::kBFloat16: return gcgan::DType::BF16;
    default: TORCH_CHECK(false, "gcgan cuda_ops: unsupported dtype ", t.scalar_type());
  }
}

void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "gcgan cuda_ops: ", what, " failed: ", cudaGetErrorString(err));
}

torch::Tensor upfirdn2d(const torch::Tensor& x_in, const torch::Tensor& kernel_in, int64_t up_x,
                        int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                        int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 4, "upfirdn2d: x must be a 4-D CUDA tensor");
  TORCH_CHECK(kernel_in.dim() == 2 && kernel_in.device() == x_in.device(),
              "upfirdn2d: kernel must be 2-D on x's device");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1,
              "upfirdn2d: up and down must be >= 1");
  const auto acc_type = x_in.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  TORCH_CHECK(kernel_in.scalar_type() == acc_type, "upfirdn2d: kernel dtype must be ", acc_type);
  TORCH_CHECK(kernel_in.numel() <= gcgan::kMaxKernelTaps, "upfirdn2d: kernel has more than ",
              gcgan::kMaxKernelTaps, " taps");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = x_in.contiguous();
  const auto kernel = kernel_in.contiguous();

  gcgan::Upfirdn2dParams p{};
  p.planes = x.size(0) * x.size(1);
  p.in_h = static_cast<int>(x.size(2));
  p.in_w = static_cast<int>(x.size(3));
  p.up_x = static_cast<int>(up_x);
  p.up_y = static_cast<int>(up_y);
  p.down_x = static_cast<int>(down_x);
  p.down_y = static_cast<int>(down_y);
  p.pad_x0 = static_cast<int>(pad_x0);
  p.pad_y0 = static_cast<int>(pad_y0);
  p.kernel_h = static_cast<int>(kernel.size(0));
  p.kernel_w = static_cast<int>(kernel.size(1));
  p.out_h = static_cast<int>((p.in_h * up_y + pad_y0 + pad_y1 - p.kernel_h) / down_y + 1);
  p.out_w = static_cast<int>((p.in_w * up_x + pad_x0 + pad_x1 - p.kernel_w) / down_x + 1);
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1, "upfirdn2d: empty output");

  auto y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
  check_cuda(gcgan::upfirdn2d_launch(element_type(x), x.data_ptr(), kernel.data_ptr(),
                                     y.data_ptr(), p, at::cuda::getCurrentCUDAStream()),
             "upfirdn2d kernel");
  return y;
}

torch::Tensor fused_bias_act(const torch::Tensor& x_in, const c10::optional<torch::Tensor>& bias_in,
                             double slope, double scale) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() >= 2, "fused_bias_act: x must be a CUDA tensor [N, C, ...]");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = x_in.contiguous();
  torch::Tensor bias;
  if (bias_in.has_value()) {
    bias = bias_in->contiguous();
    TORCH_CHECK(bias.device() == x.device() && bias.scalar_type() == x.scalar_type() &&
                    bias.dim() == 1 && bias.size(0) == x.size(1),
                "fused_bias_act: bias must be [C] with x's dtype and device");
  }
  auto y = torch::empty_like(x);
  const int64_t channels = x.size(1);
  const int64_t inner = x.numel() == 0 ? 1 : x.numel() / (x.size(0) * channels);
  check_cuda(gcgan::fused_bias_act_launch(element_type(x), x.data_ptr(),
                                          bias.defined() ? bias.data_ptr() : nullptr, y.data_ptr(),
                                          x.numel(), channels, inner, slope,
                                          scale, at::cuda::getCurrentCUDAStream()),
             "fused_bias_act kernel");
  return y;
}

torch::Tensor fused_bias_act_grad(const torch::Tensor& grad_in, const torch::Tensor& out_in,
                                  double slope, double scale) {
  TORCH_CHECK(grad_in.is_cuda() && grad_in.sizes() == out_in.sizes() &&
                  grad_in.scalar_type() == out_in.scalar_type() &&
                  grad_in.device() == out_in.device(),
              "fused_bias_act_grad: grad and out must be CUDA tensors of one shape and dtype");
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const auto grad = grad_in.contiguous();
  const auto out = out_in.contiguous();
  auto result = torch::empty_like(grad);
  check_cuda(gcgan::fused_bias_act_grad_launch(element_type(grad), grad.data_ptr(), out.data_ptr(),
                                               result.data_ptr(), grad.numel(), slope, scale,
                                               at::cuda::getCurrentCUDAStream()),
             "fused_bias_act_grad kernel");
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gcgan CUDA kernels (see cuda_ops/__init__.py for the public API)";
  m.def("upfirdn2d", &upfirdn2d, "upfirdn2d forward (x, kernel, up_x, up_y, down_x, down_y, pads)");
  m.def("fused_bias_act", &fused_bias_act, "scale * leaky_relu(x + bias, slope)");
  m.def("fused_bias_act_grad", &fused_bias_act_grad, "grad * scale * (out > 0 ? 1 : slope)");
}
