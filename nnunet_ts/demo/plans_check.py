"""One plan for the networks a comparison sets side by side, checked on the plans files.

Baseline (dataset 702) and students (704) must train with identical plans: spacing, intensity
normalisation, patch, batch, network, and the same ``"nnunet_ts"`` training settings. The demo gets there
the nnU-Net way: it plans 702 (the strong cases, with their true masks) and moves those plans to 704
(``nnUNetv2_move_plans_between_datasets``), then preprocesses 704 with them. The two teachers (701:
CT + segbox; 702: CT) share one plan apart from the segbox channel.

:func:`plan_differences` lists where two plans differ; the demo stops when the compared networks' plans
differ anywhere but in the dataset's name (``nnunet_ts.demo.pipeline.check_one_plan``). No torch here.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any

from nnunet_ts.planners.plans_file import resolved_configuration

NAME_KEYS = ("dataset_name",)
# per-channel entries: a teacher's segbox channel (1) is what the CT-only teacher does not have
PER_CHANNEL_CONFIGURATION_KEYS = ("normalization_schemes", "use_mask_for_norm")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (``configurations.3d_tiny.patch_size``); [] when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(where)
            else:
                out += differences(a[key], b[key], where)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def comparable_plans(plans: dict, configurations: list[str], channels: int | None = None) -> dict:
    """What must be equal between two datasets' plans: the plan-level entries (without the dataset's name)
    and the named configurations, resolved through ``inherits_from``.

    ``channels``: keep only the first ``channels`` input channels' per-channel entries (1 compares a
    teacher's CT channel with a CT-only plan).
    """
    out = {k: deepcopy(v) for k, v in plans.items() if k not in NAME_KEYS and k != "configurations"}
    out["configurations"] = {name: resolved_configuration(plans, name) for name in configurations}
    if channels is not None:
        per_channel = out.get("foreground_intensity_properties_per_channel") or {}
        out["foreground_intensity_properties_per_channel"] = {k: v for k, v in per_channel.items()
                                                              if int(k) < channels}
        for configuration in out["configurations"].values():
            for key in PER_CHANNEL_CONFIGURATION_KEYS:
                if isinstance(configuration.get(key), list):
                    configuration[key] = configuration[key][:channels]
    return out


def plan_differences(plans_a: dict, plans_b: dict, configurations: list[str],
                     channels: int | None = None) -> list[str]:
    """Where two datasets' plans differ for ``configurations`` (see :func:`comparable_plans`)."""
    return differences(comparable_plans(plans_a, configurations, channels),
                       comparable_plans(plans_b, configurations, channels))
