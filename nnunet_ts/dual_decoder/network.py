"""The dual-output student network: one encoder, two fully separate decoders (segmentation, segbox).

Built from the plans' own U-Net (dynamic-network-architectures ``PlainConvUNet`` or
``ResidualEncoderUNet``, as nnU-Net builds it): its encoder and decoder are kept as they are, and a
second ``UNetDecoder`` with the same stages reads the same encoder features and predicts the segbox
(one logit channel per scale); it has as many convolutions per stage as the segmentation decoder
unless ``box_convs_per_stage`` asks for fewer (a cheaper box decoder). In training mode ``forward``
returns ``(segmentation, segbox)``, each a list over deep-supervision scales (highest resolution first)
or a tensor, so every parameter takes
part in the forward pass (DDP needs no ``find_unused_parameters``). In eval mode it returns the
segmentation only, exactly what the plain U-Net would return: nnU-Net's predictor, mirroring,
validation and checkpoints work unchanged. Tensors are (B, C, Z, Y, X).
"""
from __future__ import annotations

import re

import torch
from torch import nn


class DualDecoderUNet(nn.Module):
    """A U-Net from the plans plus a segbox decoder on its encoder.

    Args:
        unet: the network nnU-Net built from the plans; must have ``encoder`` and ``decoder``
            (dynamic-network-architectures ``UNetDecoder``) attributes.
        box_channels: logit channels of the segbox decoder (1: a sigmoid box probability).
        box_convs_per_stage: convolutions per stage of the segbox decoder; None: as many as the
            segmentation decoder's stages have (two identical decoders, as in the paper).
    Raises:
        ValueError: ``unet`` is not an encoder-decoder network of dynamic-network-architectures, or
            ``box_convs_per_stage`` < 1.
    """

    def __init__(self, unet: nn.Module, box_channels: int = 1, box_convs_per_stage: int | None = None):
        super().__init__()
        from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder

        if not isinstance(getattr(unet, "decoder", None), UNetDecoder) or not hasattr(unet, "encoder"):
            raise ValueError(f"{type(unet).__name__} is not a U-Net with encoder and UNetDecoder "
                             f"(the plans' architecture must be PlainConvUNet or ResidualEncoderUNet)")
        if box_convs_per_stage is not None and box_convs_per_stage < 1:
            raise ValueError(f"box_convs_per_stage must be >= 1 or None, got {box_convs_per_stage}")
        self.encoder = unet.encoder
        self.decoder = unet.decoder
        seg_decoder = unet.decoder
        first_conv = seg_decoder.stages[0].convs[0]
        self.box_decoder = UNetDecoder(
            self.encoder, box_channels,
            n_conv_per_stage=[box_convs_per_stage or len(stage.convs) for stage in seg_decoder.stages],
            deep_supervision=seg_decoder.deep_supervision,
            nonlin_first=_nonlin_first(first_conv))
        if hasattr(unet, "initialize"):  # nnU-Net's He initialisation, as for the plans' network
            self.box_decoder.apply(unet.initialize)

    def forward(self, x: torch.Tensor):
        skips = self.encoder(x)
        segmentation = self.decoder(skips)
        if not self.training:
            return segmentation
        # nnU-Net switches deep supervision on ``decoder`` only; the box decoder follows it
        self.box_decoder.deep_supervision = self.decoder.deep_supervision
        return segmentation, self.box_decoder(skips)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s, with one clear error for a checkpoint whose segbox decoder has another number
        of convolutions per stage (trained with another ``box_decoder_convs``) instead of a list of keys."""
        ours = max(len(stage.convs) for stage in self.box_decoder.stages)
        theirs = _box_convs_per_stage(state_dict)
        if strict and theirs and theirs != ours:
            full = theirs == max(len(stage.convs) for stage in self.decoder.stages)
            raise RuntimeError(
                f"the checkpoint's segbox decoder has {theirs} convolution(s) per stage, the configuration builds "
                f"{ours}; set the configuration's box_decoder_convs to match: `nnunet_ts plan-dual -d ID -c SOURCE "
                f"--name CONFIGURATION --box-decoder-convs {'full' if full else theirs} --overwrite` (a configuration "
                f"without the setting builds the default, the full copy; earlier versions built 1), then load "
                f"again")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward_with_segbox(self, x: torch.Tensor):
        """``(segmentation, segbox)`` whatever the mode (validation of the segbox decoder)."""
        skips = self.encoder(x)
        self.box_decoder.deep_supervision = self.decoder.deep_supervision
        return self.decoder(skips), self.box_decoder(skips)

    def compute_conv_feature_map_size(self, input_size):
        return (self.encoder.compute_conv_feature_map_size(input_size)
                + self.decoder.compute_conv_feature_map_size(input_size)
                + self.box_decoder.compute_conv_feature_map_size(input_size))


_BOX_CONV_KEY = re.compile(r"(?:^|\.)box_decoder\.stages\.\d+\.convs\.(\d+)\.")


def _box_convs_per_stage(state_dict) -> int:
    """Convolutions per stage of the segbox decoder in a state dict (the most of any stage); 0 if none."""
    found = [int(m.group(1)) for key in state_dict if (m := _BOX_CONV_KEY.search(key))]
    return max(found) + 1 if found else 0


def _nonlin_first(conv_block: nn.Module) -> bool:
    """Whether a ConvDropoutNormReLU block applies its nonlinearity before its norm."""
    order = list(getattr(conv_block, "all_modules", []))
    norm, nonlin = getattr(conv_block, "norm", None), getattr(conv_block, "nonlin", None)
    if norm is None or nonlin is None:
        return False
    return order.index(nonlin) < order.index(norm)
