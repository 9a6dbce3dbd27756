"""A kernel backend made of the reference ops, so the custom autograd Functions
(the CUDA path's backward algebra) can be checked on the CPU."""

import torch

from cuda_ops.reference import fused_leaky_relu_ref, upfirdn2d_ref


class ReferenceBackend:
    """Same call signatures as the compiled extension's functions."""

    @staticmethod
    def upfirdn2d(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
        return upfirdn2d_ref(x, kernel, (up_x, up_y), (down_x, down_y), (pad_x0, pad_x1, pad_y0, pad_y1))

    @staticmethod
    def fused_bias_act(x, bias, slope, scale):
        return fused_leaky_relu_ref(x, bias, slope, scale)

    @staticmethod
    def fused_bias_act_grad(grad, out, slope, scale):
        gain = torch.where(out > 0, torch.ones_like(out), torch.full_like(out, slope))
        return grad * scale * gain
