"""Tiny CPU-sized configurations: a plans edit, not a new preprocessing.

``add_tiny_configuration`` adds a configuration (default ``3d_tiny``) to an existing nnU-Net plans
file. It ``inherits_from`` a planned configuration (default ``3d_fullres``), so it shares that
configuration's spacing, normalisation and preprocessed data; only the network (few stages, 8..64
features), the patch and the batch size change. An iteration then costs about half a second on a
2-core CPU instead of ~12 s, which is what tests, CI and CPU demos need.

Usage with the stock commands::

    nnUNetv2_plan_and_preprocess -d 501 -c 3d_fullres
    nnunet_ts tiny-plans -d 501 --epochs 2 --iterations 4   # optionally with a training budget
    nnUNetv2_train 501 3d_tiny 0 -tr BaselineTrainer -device cpu
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.planners.plans_file import SETTINGS_KEY, add_configuration, load_plans
from nnunet_ts.planners.training_settings import TrainingSettings


@dataclass(frozen=True)
class TinyPlan:
    """Shape of the tiny configuration.

    Attributes:
        name: configuration name to add.
        source: planned configuration to inherit data and spacing from.
        patch_size: requested patch (z, y, x) in voxels, capped per axis at the source configuration's
            patch (nnU-Net sized that to the median image; a larger patch would be padding, e.g. on lung
            crops narrower than 64 voxels); nnU-Net's topology rule then makes it divisible by the
            network's total stride, so the final patch may be slightly smaller/larger.
        features_per_stage: encoder widths; their number caps the number of stages.
        batch_size: patches per iteration.
        n_conv_per_stage: convolutions per encoder and decoder stage.
        settings: training settings to record with it (e.g. a budget), ``planners.training_settings``;
            None records none.
    """

    name: str = "3d_tiny"
    source: str = "3d_fullres"
    patch_size: tuple[int, int, int] = (32, 64, 64)
    features_per_stage: tuple[int, ...] = (8, 16, 32, 64)
    batch_size: int = 2
    n_conv_per_stage: int = 2
    settings: TrainingSettings | None = None

    def __post_init__(self) -> None:
        if len(self.patch_size) != 3 or min(self.patch_size) < 8:
            raise ValueError(f"patch_size must be 3 sizes >= 8, got {self.patch_size}")
        if len(self.features_per_stage) < 2:
            raise ValueError("features_per_stage needs at least 2 stages")
        if self.batch_size < 1 or self.n_conv_per_stage < 1:
            raise ValueError("batch_size and n_conv_per_stage must be >= 1")


def capped_patch(requested: tuple[int, ...], source_patch: list[int]) -> list[int]:
    """The requested patch, no axis larger than the source configuration's patch."""
    return [int(min(r, s)) for r, s in zip(requested, source_patch)]


def tiny_configuration(source_config: dict, plan: TinyPlan) -> dict:
    """The configuration dict to add, from the resolved source configuration."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    spacing = source_config["spacing"]
    requested = capped_patch(plan.patch_size, source_config["patch_size"])
    _, pool_sizes, conv_sizes, patch, _ = get_pool_and_conv_props(spacing, requested, 4, 999999)
    n_stages = min(len(pool_sizes), len(plan.features_per_stage))
    pool_sizes, conv_sizes = pool_sizes[:n_stages], conv_sizes[:n_stages]
    divisor = np.prod(np.array(pool_sizes), axis=0)
    patch = [int(max(d, round(p / d) * d)) for p, d in zip(patch, divisor)]
    arch = deepcopy(source_config["architecture"])
    kwargs = arch["arch_kwargs"]
    kwargs.update(
        n_stages=n_stages,
        features_per_stage=list(plan.features_per_stage[:n_stages]),
        kernel_sizes=[list(map(int, k)) for k in conv_sizes],
        strides=[list(map(int, s)) for s in pool_sizes],
        n_conv_per_stage=[plan.n_conv_per_stage] * n_stages,
        n_conv_per_stage_decoder=[plan.n_conv_per_stage] * (n_stages - 1),
    )
    tiny = {"batch_size": plan.batch_size, "patch_size": patch, "architecture": arch}
    if plan.settings is not None:
        tiny[SETTINGS_KEY] = plan.settings.check(f"tiny configuration {plan.name!r}").as_plans()
    return tiny


def add_tiny_configuration(plans_file: str | Path, plan: TinyPlan = TinyPlan(),
                           overwrite: bool = False) -> dict:
    """Add ``plan.name`` to a plans JSON file in place; returns the added configuration.

    Raises:
        InputError: missing plans file, unknown source configuration, or the name exists already
            (pass ``overwrite``).
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    # nnU-Net's own resolution: it also rebuilds the architecture entry of plans from older releases
    source = PlansManager(load_plans(plans_file, plan.source)).get_configuration(plan.source).configuration
    return add_configuration(plans_file, plan.name, tiny_configuration(source, plan), plan.source,
                             overwrite=overwrite)
