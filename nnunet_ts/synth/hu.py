"""The HU model: tissue labels -> Hounsfield units with smooth texture, before vessels, tumours,
blur and scanner noise.

Per case, each tissue gets a mean HU drawn from its range and a texture amplitude applied to one
shared smooth random field (features about 8 mm wide). The lungs are also denser posteriorly
(dependent atelectasis, up to +40 HU).

=============== ============== =========
tissue          mean HU        texture
=============== ============== =========
air             -1000          0
fat             -120 .. -85    8
muscle          config 38-52   6
lung            config -870..-830, +0..40 posterior  12
mediastinal fat fat + 0..15    10
heart, vessels  config 35-50   4
airway lumen    -1000 .. -980  3
bone cortex     750 .. 1000    60
bone marrow     380 .. 470     50
disc            70 .. 100      6
liver           50 .. 65       5
stomach/spleen  30 .. 45       8
table shell     100 .. 250     0
table core      -900 .. -800   5
=============== ============== =========
"""
from __future__ import annotations

import numpy as np

from nnunet_ts.synth.anatomy import Anatomy, Tissue
from nnunet_ts.synth.config import SynthConfig
from nnunet_ts.synth.grid import Grid
from nnunet_ts.synth.noise import smooth_field

_TEXTURE_HU = {
    Tissue.AIR: 0.0, Tissue.FAT: 8.0, Tissue.MUSCLE: 6.0, Tissue.LUNG: 12.0, Tissue.MEDIASTINAL_FAT: 10.0,
    Tissue.HEART: 4.0, Tissue.GREAT_VESSEL: 4.0, Tissue.AIRWAY: 3.0, Tissue.BONE_CORTEX: 60.0,
    Tissue.BONE_MARROW: 50.0, Tissue.DISC: 6.0, Tissue.LIVER: 5.0, Tissue.ABDOMEN: 8.0,
    Tissue.TABLE_SHELL: 0.0, Tissue.TABLE_CORE: 5.0,
}
TEXTURE_SCALE_MM = 8.0


def sample_hu_means(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """Mean HU per tissue for one case, float32 indexed by :class:`Tissue`."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))   # noqa: E731
    fat = u(-120.0, -85.0)
    blood = u(*config.vessel_hu)
    means = {
        Tissue.AIR: -1000.0, Tissue.FAT: fat, Tissue.MUSCLE: u(*config.soft_tissue_hu),
        Tissue.LUNG: u(*config.lung_hu), Tissue.MEDIASTINAL_FAT: fat + u(0.0, 15.0),
        Tissue.HEART: blood, Tissue.GREAT_VESSEL: blood, Tissue.AIRWAY: u(-1000.0, -980.0),
        Tissue.BONE_CORTEX: u(750.0, 1000.0), Tissue.BONE_MARROW: u(380.0, 470.0),
        Tissue.DISC: u(70.0, 100.0), Tissue.LIVER: u(50.0, 65.0), Tissue.ABDOMEN: u(30.0, 45.0),
        Tissue.TABLE_SHELL: u(100.0, 250.0), Tissue.TABLE_CORE: u(-900.0, -800.0),
    }
    table = np.zeros(len(Tissue), np.float32)
    for tissue, value in means.items():
        table[tissue] = value
    return table


def tissue_hu(labels: np.ndarray, grid: Grid, anat: Anatomy, rng: np.random.Generator,
              config: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """HU image (float32, (z, y, x)) of a tissue map with texture and the lungs' AP gradient, and
    the case's mean HU per tissue."""
    means = sample_hu_means(rng, config)
    amplitude = np.zeros(len(Tissue), np.float32)
    for tissue, value in _TEXTURE_HU.items():
        amplitude[tissue] = value
    texture = smooth_field(rng, labels.shape, [TEXTURE_SCALE_MM / s for s in grid.spacing])
    hu = amplitude[labels]
    hu *= texture
    hu += means[labels]
    # Dependent lung is denser: 0 HU anteriorly rising to `gradient` at the posterior edge.
    gradient = float(rng.uniform(0.0, 40.0))
    _, y3, _ = grid.coords()
    ramp = (gradient * np.clip((y3[0] - anat.lung_cy + anat.lung_ay) / (2.0 * anat.lung_ay), 0.0, 1.0))
    hu += (labels == Tissue.LUNG) * ramp.astype(np.float32)[None]
    return hu, means
