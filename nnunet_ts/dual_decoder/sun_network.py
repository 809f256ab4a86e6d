"""Sun et al.'s student network: one shared U-Net and a light localisation branch that predicts the segbox.

Sun et al.'s student shares the decoder between segmentation and localisation: a localisation branch
aggregates the decoder's features of every scale and predicts the boxes as a segmentation (the
segbox). Here, on the plans' U-Net (dynamic-network-architectures ``PlainConvUNet`` or
``ResidualEncoderUNet``):

* the decoder's stage outputs (every scale, lowest resolution first) are read with forward hooks, so
  the U-Net's own ``forward`` runs unchanged;
* each is projected by a 1x1 convolution to the finest stage's width and brought to the finest
  resolution; Sun et al. use pixel shuffle in 2D, which torch has no 3D form of, so the maps are
  interpolated (linear) instead;
* their sum, after the encoder's nonlinearity, gives one segbox logit per voxel through a 1x1
  convolution, at full resolution. Where the student trains with deep supervision, the lower scales
  get that logit average-pooled to their shape, so nnU-Net's deep-supervision weights apply to both
  outputs as to the dual-decoder student's (``DualDecoderLoss``).

In training mode ``forward`` returns ``(segmentation, segbox)`` as ``DualDecoderUNet`` does; in eval mode
the segmentation only, exactly the plain U-Net's: nnU-Net's validation, predictor and mirroring work
unchanged. Tensors are (B, C, Z, Y, X).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SunStudentUNet(nn.Module):
    """A U-Net from the plans plus a localisation branch on its decoder's multi-scale features.

    Args:
        unet: the network nnU-Net built from the plans (``encoder`` and a ``UNetDecoder`` ``decoder``).
        box_channels: logit channels of the segbox output (1: a sigmoid box probability).

    Raises:
        ValueError: ``unet`` is not an encoder-decoder network of dynamic-network-architectures.
    """

    def __init__(self, unet: nn.Module, box_channels: int = 1):
        super().__init__()
        from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder

        if not isinstance(getattr(unet, "decoder", None), UNetDecoder) or not hasattr(unet, "encoder"):
            raise ValueError(f"{type(unet).__name__} is not a U-Net with encoder and UNetDecoder "
                             f"(the plans' architecture must be PlainConvUNet or ResidualEncoderUNet)")
        self.encoder, self.decoder = unet.encoder, unet.decoder
        encoder = self.encoder
        conv = encoder.conv_op
        # decoder stage s outputs encoder.output_channels[-(s + 2)] channels; the last stage is the finest
        widths = [encoder.output_channels[-(s + 2)] for s in range(len(self.decoder.stages))]
        finest = widths[-1]
        self.projections = nn.ModuleList(conv(w, finest, 1, 1, 0, bias=True) for w in widths)
        self.nonlin = encoder.nonlin(**(encoder.nonlin_kwargs or {})) if encoder.nonlin else nn.Identity()
        self.box_head = conv(finest, box_channels, 1, 1, 0, bias=True)
        self._features: list[torch.Tensor] = []
        for stage in self.decoder.stages:
            stage.register_forward_hook(self._keep_features)
        if hasattr(unet, "initialize"):  # nnU-Net's He initialisation, as for the plans' network
            for module in (self.projections, self.box_head):
                module.apply(unet.initialize)

    def _keep_features(self, module, args, output) -> None:
        if self.training:
            self._features.append(output)

    def forward(self, x: torch.Tensor):
        self._features = []
        skips = self.encoder(x)
        segmentation = self.decoder(skips)
        if not self.training:
            return segmentation
        features, self._features = self._features, []
        return segmentation, self._localise(features, segmentation)

    def _localise(self, features: list[torch.Tensor], segmentation):
        size = features[-1].shape[2:]
        mode = "trilinear" if len(size) == 3 else "bilinear"
        summed = sum(F.interpolate(p(f), size=size, mode=mode, align_corners=False) if f.shape[2:] != size
                     else p(f) for p, f in zip(self.projections, features))
        box = self.box_head(self.nonlin(summed))
        if not isinstance(segmentation, (list, tuple)):
            return box
        # deep supervision: the lower scales get the full-resolution logit pooled to their shape
        return [box if s.shape[2:] == box.shape[2:] else F.adaptive_avg_pool3d(box, s.shape[2:])
                if box.ndim == 5 else F.adaptive_avg_pool2d(box, s.shape[2:]) for s in segmentation]

    def compute_conv_feature_map_size(self, input_size):
        return (self.encoder.compute_conv_feature_map_size(input_size)
                + self.decoder.compute_conv_feature_map_size(input_size))
