"""Budget configurations: a plans edit that fixes how long a configuration trains.

``add_budget_configuration`` adds a configuration (e.g. ``demo_teacher``) that ``inherits_from`` a
planned one (``3d_fullres`` or ``3d_tiny``), so it shares its network, patch, spacing and preprocessed
data, and records ``"nnunet_ts_budget": [epochs, iterations per epoch, validation iterations per epoch]``.
Trainers with ``PlansBudgetMixin`` (the ``*PlansBudgetTrainer`` classes) read it, so trainers compared in
one experiment train exactly as long, and the budget is visible in the results folder name
(``<Trainer>__nnUNetPlans__<configuration>``).

Usage with the stock commands::

    nnunet_ts budget-config -d 501 -c demo_teacher --source 3d_tiny --epochs 20 --iterations 25
    nnUNetv2_train 501 demo_teacher all -tr BoxTeacherPlansBudgetTrainer -device cpu
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nnunet_ts.errors import InputError

BUDGET_KEY = "nnunet_ts_budget"


@dataclass(frozen=True)
class TrainingBudget:
    """How long a network trains: ``epochs`` x ``iterations`` (+ ``val_iterations`` per epoch)."""

    epochs: int
    iterations: int
    val_iterations: int = 2

    def __post_init__(self) -> None:
        if min(self.epochs, self.iterations, self.val_iterations) < 1:
            raise ValueError(f"epochs, iterations and val_iterations must be >= 1, got {self}")

    def as_list(self) -> list[int]:
        return [self.epochs, self.iterations, self.val_iterations]


def add_budget_configuration(plans_file: str | Path, name: str, source: str, budget: TrainingBudget,
                             overwrite: bool = False) -> dict:
    """Add configuration ``name`` (inherits ``source``, trains for ``budget``) to a plans file in place.

    Rewriting the same configuration is a no-op, so a rerun of a pipeline step is harmless.

    Raises:
        InputError: missing plans file, unknown ``source``, or ``name`` exists with other content
            (pass ``overwrite``).
    """
    plans_file = Path(plans_file)
    if not plans_file.is_file():
        raise InputError(f"plans file {plans_file} does not exist; plan the dataset first "
                         f"(nnUNetv2_plan_and_preprocess -d <id> -c 3d_fullres)")
    plans = json.loads(plans_file.read_text())
    configs = plans.get("configurations", {})
    if source not in configs:
        raise InputError(f"plans file {plans_file} has no configuration {source!r} (has: "
                         f"{', '.join(configs)}); plan it first or choose another --source")
    config = {"inherits_from": source, BUDGET_KEY: budget.as_list()}
    if name in configs and configs[name] != config and not overwrite:
        raise InputError(f"plans file {plans_file} already has a configuration {name!r} "
                         f"({configs[name]}); pass --overwrite to replace it")
    configs[name] = config
    tmp = plans_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plans, indent=4))
    tmp.replace(plans_file)
    return config


def has_configuration(plans_file: str | Path, name: str) -> bool:
    plans_file = Path(plans_file)
    return plans_file.is_file() and name in json.loads(plans_file.read_text()).get("configurations", {})
