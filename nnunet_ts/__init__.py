"""nnunet_ts: teacher-student lung-tumour segmentation from mixed supervision, on nnU-Net v2.

Importing this package is cheap: no torch, no nnU-Net, no environment reads. Trainers live in
``nnunet_ts.trainers`` and are found by nnU-Net through ``nnUNet_extTrainer`` (see ``nnunet_ts env``).
"""
__version__ = "0.1.0"
