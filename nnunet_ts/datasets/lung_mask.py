"""Lung masks of a CT: lungmask R231 when its weights are on disk, else the classical mask.

:func:`compute_lung_mask` is the entry point (lung cropping, ``nnunet_ts predict --lung-filter``).
lungmask (Hofmanninger et al. 2020, model R231) is used when its state dict is on disk (an explicit
path, or lungmask's own torch hub cache). Without it :func:`classical_lung_mask`
(:mod:`nnunet_ts.datasets.lung_mask_classical`: HU, body, airways, shape; built for tight fields of
view, partial chests and one lung) is used, announced once per process (a
:class:`LungMaskFallbackWarning` and a line on stderr) and recorded in the result's ``warning``.

Labels are R231's: uint8 (z, y, x), 0 none, 1 right lung, 2 left lung (patient sides, LPS).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.datasets.lung_mask_classical import LEFT, RIGHT, ClassicalSettings, classical_lung_mask
from nnunet_ts.errors import InputError

R231_FILE = "unet_r231-d5d2fc3d.pth"   # the file name lungmask's downloader caches
SIDES = {RIGHT: "right", LEFT: "left"}

__all__ = ["LEFT", "R231_FILE", "RIGHT", "SIDES", "ClassicalSettings", "LungMask", "LungMaskFallbackWarning",
           "classical_lung_mask", "compute_lung_mask", "lungmask_weights"]

_announced: set[str] = set()           # fallback messages already announced in this process


class LungMaskFallbackWarning(UserWarning):
    """lungmask could not be used; the classical lung mask was used instead."""


@dataclass(frozen=True)
class LungMask:
    """Lung labels (uint8 (z, y, x): 0 none, 1 right lung, 2 left lung) and how they were made."""

    labels: np.ndarray
    method: str                 # "lungmask-R231" or "classical"
    weights: str | None = None
    warning: str | None = None


def lungmask_weights(path: str | Path | None = None) -> Path | None:
    """The R231 state dict to use: ``path`` if given (must exist), else lungmask's cache file
    (``<torch hub dir>/checkpoints/unet_r231-d5d2fc3d.pth``) if present, else None."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"lungmask weights {path} do not exist; download unet_r231-d5d2fc3d.pth "
                             f"from https://github.com/JoHof/lungmask/releases or leave the option out")
        return path
    return _cache_file() if _cache_file().is_file() else None


def _cache_file() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / R231_FILE


def compute_lung_mask(image, weights: str | Path | None = None, force_cpu: bool = True,
                      batch_size: int = 20, announce: bool = True) -> LungMask:
    """Lung labels of a CT (SimpleITK image in HU), with lungmask R231 or the classical fallback.

    The fallback is recorded in the result's ``warning``. With ``announce`` it is also printed to
    stderr and raised as a :class:`LungMaskFallbackWarning`, once per process for the same message
    (a command that masks many scans says it once).
    """
    import SimpleITK as sitk

    path = lungmask_weights(weights)
    reason = None
    if path is None:
        reason = (f"no lungmask R231 weights on disk (looked for {_cache_file()}; pass --lungmask-weights "
                  f"or put them in lungmask's cache)")
    else:
        try:
            from lungmask.mask import LMInferer
        except ImportError:
            if weights is not None:  # asked for explicitly: no quiet downgrade
                raise InputError(f"--lungmask-weights {weights} given but the lungmask package is not "
                                 f"installed; pip install 'nnunet_ts[lungmask]'") from None
            reason = f"the lungmask package is not installed for {path} (pip install 'nnunet_ts[lungmask]')"
    if reason is None:
        inferer = LMInferer(modelpath=str(path), force_cpu=force_cpu, batch_size=batch_size, tqdm_disable=True)
        labels = np.asarray(inferer.apply(image), dtype=np.uint8)
        return LungMask(labels, "lungmask-R231", str(path))
    message = f"lung mask: {reason}; using the classical HU-threshold lung mask instead (less robust)"
    if announce and message not in _announced:
        _announced.add(message)
        warnings.warn(message, LungMaskFallbackWarning, stacklevel=2)
        print(f"WARNING: {message}", file=sys.stderr)
    hu = sitk.GetArrayViewFromImage(image)
    labels = classical_lung_mask(hu, image.GetDirection(), image.GetSpacing(), image.GetOrigin())
    return LungMask(labels, "classical", None, message)
