"""Tiny dynamic-network-architectures U-Nets (4 stages, 8-64 features) for network tests."""
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

NORM = dict(norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
            nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def plain_unet(deep_supervision: bool = True, nonlin_first: bool = False) -> PlainConvUNet:
    return PlainConvUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv3d, 3, [1, 2, 2, 2], [2, 2, 2, 2], 2,
                         [2, 2, 2], conv_bias=True, deep_supervision=deep_supervision,
                         nonlin_first=nonlin_first, **NORM)


def residual_unet() -> ResidualEncoderUNet:
    return ResidualEncoderUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv3d, 3, [1, 2, 2, 2], [1, 2, 2, 2], 2,
                               [1, 1, 1], conv_bias=True, deep_supervision=True, **NORM)
