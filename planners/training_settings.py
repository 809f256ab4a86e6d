"""Training settings as plans data: budget, Dice smooth, mirroring and sampling of our trainers.

A method is one trainer class; how long it trains and its knobs are configuration data, as nnU-Net
keeps patch size and network in the plans. The settings sit in a configuration's ``"nnunet_ts"``
entry (next to the dual-decoder student's, ``dual_decoder_plans``)::

    "demo_student": {"inherits_from": "3d_tiny",
                     "nnunet_ts": {"budget": [20, 25, 2], "mirroring": false,
                                   "final_validation": "except_fold_all", "dice_smooth": 0.0}}

``nnunet_ts budget-config`` writes such a configuration; every trainer in ``trainers/`` reads it
(``nnunet_ts.nnunet.trainer_mixins.SettingsFromPlansMixin``), so networks compared in one experiment
train with one budget and one loss, and the configuration's name is part of the results folder
(``<Trainer>__nnUNetPlans__<configuration>``). Keys left out keep nnU-Net's behaviour or the trainer's
default (the box teacher samples 90 % of its patches on tumour).

Imports no torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from nnunet_ts.errors import InputError
from nnunet_ts.planners.plans_file import SETTINGS_KEY, add_configuration

LEGACY_BUDGET_KEY = "nnunet_ts_budget"  # plans written before the settings entry
FINAL_VALIDATION = ("always", "except_fold_all", "never")
CPU_PRECISIONS = ("auto", "bf16", "fp32")  # nnunet_ts.nnunet.cpu_precision.PRECISIONS (this module imports no torch)
DUAL_DECODER_KEYS = ("dual_decoder", "box_loss_weight", "segbox_mode", "box_decoder_convs")


@dataclass(frozen=True)
class TrainingSettings:
    """What a configuration may set for our trainers; ``None`` keeps nnU-Net's or the trainer's default.

    Attributes:
        budget: (epochs, training iterations per epoch, validation iterations per epoch).
        mirroring: mirroring augmentation in training and mirrored passes at inference (nnU-Net: on).
            Off in CPU budgets: the budget goes into iterations, and inference is 8x cheaper.
        final_validation: nnU-Net's validation after training: ``always`` (nnU-Net), ``never``, or
            ``except_fold_all`` (fold ``all`` validates on its own training cases; experiments score a
            held-out test set instead).
        dice_smooth: the Dice's smooth (nnU-Net: 1e-5). 0 is nnU-Net's
            ``nnUNetTrainerDiceCELoss_noSmooth``: a patch without tumour adds nothing to the Dice term.
        foreground_sampling: fraction of patches centred on foreground, drawn per sample (nnU-Net:
            0.33 per batch); the teachers default to 0.9.
        box_perturbation: probability that a training sample's boxes are perturbed as a reader would
            draw them (box teacher; default 0.5; 0 = exact boxes).
        strong_fraction: share of strong cases per draw for the students (default: the plain union).
        cpu_precision: the network's CPU forward passes (training, validation, prediction): ``auto``
            (default: bf16 where the CPU has native bf16 instructions, else float32), ``bf16`` or ``fp32``;
            the environment variable ``NNUNET_TS_PRECISION`` overrides it (``nnunet_ts.nnunet.cpu_precision``).
        seed: training seed (torch, numpy, random; ``nnunet_ts.nnunet.seeding``), set before the network is
            built, so a training on a CPU with ``nnUNet_n_proc_DA=0`` repeats exactly (None: nnU-Net's
            unseeded training).
    """

    budget: tuple[int, int, int] | None = None
    mirroring: bool = True
    final_validation: str = "always"
    dice_smooth: float | None = None
    foreground_sampling: float | None = None
    box_perturbation: float | None = None
    strong_fraction: float | None = None
    cpu_precision: str = "auto"
    seed: int | None = None

    def check(self, where: str) -> TrainingSettings:
        """Returns self; raises InputError naming ``where`` and the fix on a bad value."""
        fix = "rewrite it with `nnunet_ts budget-config ... --overwrite`"
        if self.budget is not None and (len(self.budget) != 3 or any(
                isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.budget)):
            raise InputError(f"{where}: budget must be [epochs, iterations, val_iterations], integers >= 1, "
                             f"got {self.budget!r}; {fix}")
        if not isinstance(self.mirroring, bool):
            raise InputError(f"{where}: mirroring must be true or false, got {self.mirroring!r}; {fix}")
        if self.final_validation not in FINAL_VALIDATION:
            raise InputError(f"{where}: final_validation must be one of {', '.join(FINAL_VALIDATION)}, got "
                             f"{self.final_validation!r}; {fix}")
        if self.cpu_precision not in CPU_PRECISIONS:
            raise InputError(f"{where}: cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, got "
                             f"{self.cpu_precision!r}; {fix}")
        if self.dice_smooth is not None and not _number_in(self.dice_smooth, 0, math.inf):
            raise InputError(f"{where}: dice_smooth must be a number >= 0, got {self.dice_smooth!r}; {fix}")
        for name in ("foreground_sampling", "box_perturbation", "strong_fraction"):
            value = getattr(self, name)
            if value is not None and not _number_in(value, 0, 1):
                raise InputError(f"{where}: {name} must be a fraction from 0 to 1, got {value!r}; {fix}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2 ** 32):
            raise InputError(f"{where}: seed must be an integer from 0 to 2^32 - 1, got {self.seed!r}; {fix}")
        return self

    def over(self, defaults: TrainingSettings) -> TrainingSettings:
        """These settings, with ``defaults``' values where these keep the default (``None``)."""
        return replace(defaults, **{f.name: getattr(self, f.name) for f in fields(self)
                                    if getattr(self, f.name) != getattr(TrainingSettings, f.name)})

    def as_plans(self) -> dict:
        """The JSON entry: only the keys that differ from the defaults."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if v != getattr(TrainingSettings, k)}


def _number_in(value, low: float, high: float) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and low <= value <= high)


def training_settings(configuration: dict, where: str) -> TrainingSettings:
    """The settings of a resolved configuration dict (``ConfigurationManager.configuration``).

    Reads the ``"nnunet_ts"`` entry; plans written with the older ``"nnunet_ts_budget"`` key mean what
    the trainers that read it did (that budget, no mirroring, no final validation on fold ``all``).

    Raises:
        InputError: an unknown key (a typo) or a bad value; the message names ``where``.
    """
    ours = configuration.get(SETTINGS_KEY) or {}
    if not isinstance(ours, dict):
        raise InputError(f"{where}: {SETTINGS_KEY!r} must be a JSON object, got {ours!r}; rewrite it with "
                         f"`nnunet_ts budget-config ... --overwrite`")
    known = {f.name for f in fields(TrainingSettings)}
    unknown = sorted(set(ours) - known - set(DUAL_DECODER_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown {SETTINGS_KEY!r} setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known | set(DUAL_DECODER_KEYS)))}")
    values = {k: v for k, v in ours.items() if k in known}
    if "budget" in values and isinstance(values["budget"], list):
        values["budget"] = tuple(values["budget"])
    legacy = configuration.get(LEGACY_BUDGET_KEY)
    if legacy is not None and "budget" not in values:
        values.update(budget=tuple(legacy), mirroring=False, final_validation="except_fold_all")
    return TrainingSettings(**values).check(where)


def add_training_configuration(plans_file: str | Path, name: str, source: str, settings: TrainingSettings,
                               overwrite: bool = False) -> dict:
    """Adds configuration ``name`` (inherits ``source``, trains with ``settings``) to a plans file in place.

    Rewriting the same configuration is a no-op, so a rerun of a pipeline step is harmless.

    Raises:
        InputError: missing plans file or source, a bad setting, or ``name`` exists with other content
            (pass ``overwrite``).
    """
    settings.check(str(plans_file))
    return add_configuration(plans_file, name, {SETTINGS_KEY: settings.as_plans()}, source,
                             overwrite=overwrite, same_is_ok=True)
