"""The dual-decoder student's configuration: a plans edit, not a new preprocessing.

``add_dual_decoder_configuration`` adds a configuration (default ``<source>_dual``, e.g.
``3d_fullres_dual``) to an existing nnU-Net plans file. It ``inherits_from`` the planned source
configuration, so it shares its spacing, patch, network and preprocessed data (same
``data_identifier``); it only carries the dual-decoder settings under our own key::

    "3d_fullres_dual": {"inherits_from": "3d_fullres",
                        "nnunet_ts": {"dual_decoder": true, "box_loss_weight": 1.0,
                                      "segbox_mode": "per_lesion",
                                      "box_decoder_convs": null}}

``DualDecoderStudentTrainer`` reads them with :func:`dual_decoder_settings` (its class attributes are
the defaults for configurations without the key), so the stock commands train it::

    nnunet_ts plan-dual -d 502 [--box-loss-weight 1.0] [--segbox-mode per_lesion]
    nnUNetv2_train 502 3d_fullres_dual 0 -tr DualDecoderStudentTrainer

Imports no torch: nnU-Net's ``PlansManager`` (to resolve inheritance) is imported when called.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_ts.boxes.segbox import SEGBOX_MODES
from nnunet_ts.errors import InputError
from nnunet_ts.planners.plans_file import SETTINGS_KEY as PLANS_KEY
from nnunet_ts.planners.plans_file import add_configuration, load_plans, resolved_configuration


@dataclass(frozen=True)
class DualDecoderSettings:
    """What the dual-decoder student reads from its configuration.

    Attributes:
        box_loss_weight: lambda in loss = seg loss + lambda * box loss (Dice + BCE); finite, >= 0
            (0 leaves the segbox decoder untrained). The paper uses 1.
        segbox_mode: form of the strong cases' segbox targets, one of ``segbox.SEGBOX_MODES``
            (pseudo cases always use their annotated segboxes).
        box_decoder_convs: convolutions per stage of the segbox decoder. None (default; ``null``,
            ``--box-decoder-convs full``): as many as the segmentation decoder, the paper's two identical
            decoders; a training iteration costs ~1.70x the single-output student's convolution FLOPs.
            N: N per stage, lighter (1: ~1.47x, within 1.5x of the single-output student;
            ``scripts/benchmarks/dual_decoder.py``). The full copy is the default because it scored
            higher on the validation set (3 training seeds, ``scripts/experiments/design_choice.py
            --choice box_decoder=full``; docs/experiments.md, "Design choices on the validation set").
    """

    box_loss_weight: float = 1.0
    segbox_mode: str = "per_lesion"
    box_decoder_convs: int | None = None

    def check(self, where: str) -> DualDecoderSettings:
        """Returns self; raises InputError naming ``where`` on a bad value."""
        weight = self.box_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise InputError(f"{where}: box_loss_weight must be a finite number >= 0, got {weight!r}; "
                             f"rewrite it with `nnunet_ts plan-dual --box-loss-weight L --overwrite`")
        if self.segbox_mode not in SEGBOX_MODES:
            raise InputError(f"{where}: segbox_mode must be one of {', '.join(SEGBOX_MODES)}, got "
                             f"{self.segbox_mode!r}; rewrite it with `nnunet_ts plan-dual --segbox-mode M "
                             f"--overwrite`")
        convs = self.box_decoder_convs
        if convs is not None and (isinstance(convs, bool) or not isinstance(convs, int) or convs < 1):
            raise InputError(f"{where}: box_decoder_convs must be an integer >= 1 or null (as the "
                             f"segmentation decoder), got {convs!r}; rewrite it with `nnunet_ts plan-dual "
                             f"--box-decoder-convs N|full --overwrite`")
        return self


def dual_decoder_settings(configuration: dict, default: DualDecoderSettings,
                          where: str) -> tuple[DualDecoderSettings, bool]:
    """The settings of a resolved configuration dict; ``(settings, from_plans)``.

    Keys missing from the configuration's ``"nnunet_ts"`` entry take ``default``'s values;
    ``from_plans`` says whether the configuration had the entry at all.

    Raises:
        InputError: a bad value (message names ``where``).
    """
    ours = configuration.get(PLANS_KEY)
    if ours is None:
        return default.check(where), False
    if not isinstance(ours, dict):
        raise InputError(f"{where}: {PLANS_KEY!r} must be a JSON object, got {ours!r}; rewrite it with "
                         f"`nnunet_ts plan-dual --overwrite`")
    settings = DualDecoderSettings(box_loss_weight=ours.get("box_loss_weight", default.box_loss_weight),
                                   segbox_mode=ours.get("segbox_mode", default.segbox_mode),
                                   box_decoder_convs=ours.get("box_decoder_convs", default.box_decoder_convs))
    return settings.check(where), True


def add_dual_decoder_configuration(plans_file: str | Path, source: str = "3d_fullres", name: str | None = None,
                                   settings: DualDecoderSettings = DualDecoderSettings(),
                                   overwrite: bool = False) -> tuple[str, dict]:
    """Add a dual-decoder configuration to a plans JSON file in place; returns ``(name, configuration)``.

    Args:
        plans_file: ``$nnUNet_preprocessed/DatasetXXX_Name/<plans>.json``.
        source: a configuration in that file to inherit everything from (data, network, patch).
        name: the configuration to add; default ``<source>_dual``.
        settings: lambda and segbox form.
        overwrite: replace an existing configuration of that name.

    Raises:
        InputError: missing plans file, unknown source, existing name without ``overwrite``, a bad
            setting, or a cascaded source (the student does not train cascades).
    """
    name = name or f"{source}_dual"
    settings.check(str(plans_file))
    if resolved_configuration(load_plans(plans_file, source), source).get("previous_stage") is not None:
        raise InputError(f"configuration {source!r} in {plans_file} is a cascade stage; the dual-decoder "
                         f"student trains a non-cascaded configuration (3d_fullres, 3d_tiny)")
    return name, add_configuration(plans_file, name, {PLANS_KEY: {"dual_decoder": True, **asdict(settings)}},
                                   source, overwrite=overwrite)
