"""Editing an nnU-Net plans file in place: the steps every plans edit of ours shares.

Each of our plans edits (``tiny_plans``, ``training_settings``, ``dual_decoder_plans``) adds one
configuration that ``inherits_from`` a planned one, so it shares its preprocessed data. They load the
plans file, check the source configuration, refuse to replace another configuration of the same name
without ``overwrite``, and save atomically (a crash leaves the old file, never half a file).

nnU-Net resolves ``inherits_from`` with a shallow ``dict.update`` (``PlansManager.
_internal_resolve_configuration_inheritance``, nnunetv2 2.8): a child's ``"nnunet_ts"`` entry would
replace its parent's. :func:`add_configuration` therefore writes the parent's resolved settings into
the child, updated, so every configuration carries all of its settings itself.

Imports no torch and no nnU-Net.
"""
from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

from nnunet_ts.errors import InputError
from nnunet_ts.io.atomic import write_text_atomic

SETTINGS_KEY = "nnunet_ts"  # our settings inside a configuration; nnU-Net ignores unknown keys


def load_plans(plans_file: str | Path, source: str) -> dict:
    """The plans dict of ``plans_file``, checked to hold configuration ``source``.

    Raises:
        InputError: the file is missing or has no configuration ``source``.
    """
    plans_file = Path(plans_file)
    if not plans_file.is_file():
        raise InputError(f"plans file {plans_file} does not exist; run nnUNetv2_plan_and_preprocess "
                         f"-d <id> -c {source} first")
    plans = json.loads(plans_file.read_text())
    configs = plans.get("configurations", {})
    if source not in configs:
        raise InputError(f"plans file {plans_file} has no configuration {source!r} (has: "
                         f"{', '.join(configs) or 'none'}); plan it first or choose another source")
    return plans


def resolved_configuration(plans: dict, name: str, _visited: tuple[str, ...] = ()) -> dict:
    """Configuration ``name`` with its ``inherits_from`` chain resolved: the parent's dict updated with the
    child's keys (mirrors ``PlansManager._internal_resolve_configuration_inheritance``, nnunetv2 2.8).

    Raises:
        InputError: an unknown configuration or a cycle of ``inherits_from``.
    """
    configs = plans.get("configurations", {})
    if name not in configs:
        raise InputError(f"the plans have no configuration {name!r} (has: {', '.join(configs) or 'none'})")
    if name in _visited:
        raise InputError(f"configurations {' -> '.join((*_visited, name))} inherit from each other in a circle")
    configuration = deepcopy(configs[name])
    parent = configuration.get("inherits_from")
    if parent is None:
        return configuration
    resolved = resolved_configuration(plans, parent, (*_visited, name))
    resolved.update(configuration)
    return resolved


def save_plans(plans_file: str | Path, plans: dict) -> None:
    """Writes ``plans`` to ``plans_file`` atomically (a temporary file renamed over it)."""
    write_text_atomic(plans_file, json.dumps(plans, indent=4))


def add_configuration(plans_file: str | Path, name: str, configuration: dict, source: str,
                      overwrite: bool = False, same_is_ok: bool = False) -> dict:
    """Adds ``configuration`` as ``name`` to a plans file in place; returns what was written.

    ``configuration`` gets ``"inherits_from": source``; its ``"nnunet_ts"`` entry (if any) is merged
    over the source's resolved one, so the child keeps the settings it inherits.

    Args:
        same_is_ok: rewriting ``name`` with identical content is a no-op, not an error (reruns).

    Raises:
        InputError: missing file or source, ``name == source``, or ``name`` exists (other content
            when ``same_is_ok``) without ``overwrite``.
    """
    plans = load_plans(plans_file, source)
    configs = plans["configurations"]
    if name == source:
        raise InputError(f"the new configuration needs its own name, not the source's {source!r}")
    new = {"inherits_from": source, **configuration}
    if SETTINGS_KEY in configuration:
        inherited = resolved_configuration(plans, source).get(SETTINGS_KEY) or {}
        new[SETTINGS_KEY] = {**inherited, **configuration[SETTINGS_KEY]}
    if name in configs and not overwrite and not (same_is_ok and configs[name] == new):
        raise InputError(f"plans file {plans_file} already has a configuration {name!r}; "
                         f"pass --overwrite to replace it")
    configs[name] = new
    save_plans(plans_file, plans)
    return new


def has_configuration(plans_file: str | Path, name: str) -> bool:
    """Whether ``plans_file`` exists and holds configuration ``name``."""
    plans_file = Path(plans_file)
    return plans_file.is_file() and name in json.loads(plans_file.read_text()).get("configurations", {})
