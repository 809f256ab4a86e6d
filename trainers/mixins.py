"""Hooks shared by our trainers; each mixin overrides one nnU-Net trainer hook.

This module holds no trainer classes; nnU-Net's lookup imports it but finds nothing to use here.
"""


class NoMirroringMixin:
    """No mirroring augmentation in training and no mirrored passes at inference."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None
