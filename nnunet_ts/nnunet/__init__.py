"""Every tie to nnU-Net: folder conventions, trainer lookup, stock commands, trainer hooks, training logs,
the predictor's tiles and resampling.

Each module names the nnU-Net function or convention it mirrors (nnunetv2 2.8.x).
"""
