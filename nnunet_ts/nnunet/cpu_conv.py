"""Fast 3D convolutions on the CPU for one patch at a time (nnU-Net's sliding-window inference).

PyTorch chooses between oneDNN (mkldnn) and its native ``slow_conv3d`` per call. Its rule, written for
2D inputs, multiplies ``batch * channels * depth * height`` (the width is left out for 5-D tensors) and
takes the native path below 20480 when the batch is 1 and the kernel is 3 wide: exactly nnU-Net's
predictor (one tile per forward pass) on small networks such as the CPU plans (8 features, patch
32x64x64). The native path is several times slower there (measured in
``scripts/benchmarks/cpu_conv.py``), and every prediction, pseudo-label and validation pays for it.

``use_onednn_for_single_patches(network)`` switches every ``nn.Conv3d`` of a network to oneDNN for
float32 CPU inputs of batch size 1, the case the rule gets wrong; other inputs (batches, CUDA, other
dtypes, and float32 inputs under bf16 autocast, which ``cpu_precision`` sets up) take PyTorch's own
choice. Weights, parameter names and checkpoints are unchanged, and so are
the results up to float32 rounding (oneDNN is what PyTorch itself runs for batches of 2).
"""
from __future__ import annotations

import torch
from torch import nn


class _SinglePatchOneDNNConv3d(nn.Conv3d):
    """``nn.Conv3d`` that calls oneDNN directly for a single float32 CPU patch (class swapped in place)."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if (input.dim() == 5 and input.shape[0] == 1 and input.device.type == "cpu"
                and input.dtype == torch.float32 and weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu")  # bf16 autocast (cpu_precision) takes oneDNN anyway
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)):
            return torch.ops.aten.mkldnn_convolution(input.contiguous(), weight, bias, self.padding,
                                                     self.stride, self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


def use_onednn_for_single_patches(network: nn.Module) -> nn.Module:
    """Switches the network's ``nn.Conv3d`` modules (in place) to oneDNN for batch-1 CPU inputs.

    A no-op where PyTorch was built without oneDNN. Returns the network.
    """
    if not torch.backends.mkldnn.is_available():
        return network
    for module in network.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = _SinglePatchOneDNNConv3d
    return network
