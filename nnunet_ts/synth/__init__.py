"""Synthetic thorax CTs with lung tumours: the built-in dataset for demos, tests and benchmarks.

``generate_case(seed, config)`` draws one case (CT in HU, tumour mask, geometry, lesion list);
``write_cohort(out_dir, n_strong, n_weak, n_test, seed, config)`` writes a whole cohort with its
``cases.csv`` manifest, per-slice boxes and lesion list. ``SynthConfig`` holds every sampling
range; its ``compact`` preset (default) and ``clinical`` preset differ in resolution, not anatomy
(see :mod:`nnunet_ts.synth.config` for the spacing / field-of-view choice).

Modules: ``config`` (settings), ``grid`` (voxel grid, tubes), ``anatomy`` (tissue labels),
``hu`` (HU model), ``noise`` (textures, scanner noise), ``vessels`` (vessel/bronchus trees),
``tumours`` (shapes, placement), ``generator`` (one case), ``writer`` (a cohort on disk).
"""
from nnunet_ts.synth.config import PRESETS, SynthConfig
from nnunet_ts.synth.generator import SyntheticCase, generate_case
from nnunet_ts.synth.tumours import Lesion
from nnunet_ts.synth.writer import case_seed, write_cohort

__all__ = ["PRESETS", "Lesion", "SynthConfig", "SyntheticCase", "case_seed", "generate_case", "write_cohort"]
