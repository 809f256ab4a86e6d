"""Random fields: smooth tissue texture and scanner noise, all float32 (z, y, x).

Smooth fields are white noise on a coarse lattice, interpolated to the grid with a separable
Gaussian kernel (three small matrix products), which is much faster than ``scipy.ndimage.zoom``
and free of its piecewise-linear creases.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _interpolation_matrix(n_out: int, n_in: int, step: float) -> np.ndarray:
    """(n_out, n_in) rows of Gaussian weights placing output voxel i at lattice point i / step + 1."""
    pos = np.arange(n_out) / step + 1.0
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(n_in)[None, :]) / 0.7) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: Sequence[int], scale_vox: Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std random field whose features are about ``scale_vox`` voxels (z, y, x) wide."""
    shape = tuple(int(s) for s in shape)
    steps = [max(float(s), 1.0) for s in scale_vox]
    coarse_shape = [int(np.ceil(n / st)) + 3 for n, st in zip(shape, steps)]
    field = rng.standard_normal(coarse_shape, dtype=np.float32)
    mz, my, mx = (_interpolation_matrix(n, c, st) for n, c, st in zip(shape, coarse_shape, steps))
    cz, cy, _ = coarse_shape
    nz, ny, nx = shape
    # Three plain 2D matrix products (a broadcast matmul over stacks is far slower).
    field = field.reshape(-1, field.shape[2]) @ mx.T                        # (cz*cy, X)
    field = field.reshape(cz, cy, nx).transpose(1, 0, 2).reshape(cy, -1)   # (cy, cz*X)
    field = (my @ field).reshape(ny, cz, nx).transpose(1, 0, 2)             # (cz, Y, X)
    field = (mz @ field.reshape(cz, -1)).reshape(shape)
    field -= field.mean()
    field *= 1.0 / max(float(field.std()), 1e-6)
    return field


def scanner_noise(rng: np.random.Generator, shape: Sequence[int], sigma_hu: float,
                  correlation_vox: float) -> np.ndarray:
    """Gaussian noise with standard deviation ``sigma_hu``, correlated in-plane.

    Args:
        correlation_vox: sigma (voxels) of an in-plane Gaussian kernel applied to white noise, like
            the reconstruction kernel of a soft-tissue filter; 0 for white noise. The result is
            rescaled so its standard deviation is still ``sigma_hu``.
    """
    noise = rng.standard_normal(tuple(shape), dtype=np.float32)
    if correlation_vox > 0.05:
        noise = ndimage.gaussian_filter(noise, (0.0, correlation_vox, correlation_vox), truncate=3.0)
        # Smoothing lowers the variance; measured rather than the asymptotic 1 / (4 pi sigma^2),
        # which is far off for the sub-voxel kernels used here.
        noise *= 1.0 / max(float(noise.std()), 1e-6)
    noise *= sigma_hu
    return noise
