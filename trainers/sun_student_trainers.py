"""Sun et al.'s student: a shared decoder and a localisation branch predicting the segbox.

``SunStudentTrainer`` is ``DualDecoderStudentTrainer`` (soft targets, segbox targets, augmentation and
loss: seg loss + lambda * box loss) with one hook changed, ``box_network``: instead of a second decoder,
the plans' U-Net gets a light localisation branch that reads its decoder's features of every scale
(``dual_decoder.sun_network.SunStudentUNet``). Lambda and the segbox form come from the configuration
as for the dual-decoder student (``nnunet_ts plan-dual``); ``box_decoder_convs`` does not apply.
"""
from nnunet_ts.dual_decoder.sun_network import SunStudentUNet
from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer


class SunStudentTrainer(DualDecoderStudentTrainer):
    @classmethod
    def box_network(cls, unet, settings):
        return SunStudentUNet(unet, box_channels=1)
