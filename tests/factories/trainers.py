"""Building our trainers in this process on a planned dataset, as ``nnUNetv2_train`` would."""
from __future__ import annotations

import json
from pathlib import Path

import torch


def trainer_class(name: str):
    """The class nnU-Net's lookup finds for ``name`` in our trainer folder (``nnUNet_extTrainer``)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    return recursive_find_trainer_class_by_name(name)


def make_trainer(trainer, preprocessed: Path, configuration: str = "3d_tiny", settings: dict | None = None,
                 initialize: bool = True, fold: int = 0, replace_settings: bool = False):
    """``trainer`` (a class) on ``preprocessed`` (``$nnUNet_preprocessed/DatasetXXX_Name``).

    ``settings``: ``"nnunet_ts"`` settings put into the configuration in memory (the plans file is left
    as it is), as ``nnunet_ts budget-config`` would write them; added to the configuration's own, or
    in their place with ``replace_settings``.
    """
    plans = json.loads((Path(preprocessed) / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # what nnUNetv2_train adds (nnU-Net 2.8.1)
    if settings is not None:
        config = plans["configurations"][configuration]
        config["nnunet_ts"] = {**({} if replace_settings else config.get("nnunet_ts", {})), **settings}
    dataset_json = json.loads((Path(preprocessed) / "dataset.json").read_text())
    built = trainer(plans, configuration, fold, dataset_json, device=torch.device("cpu"))
    if initialize:
        built.initialize()
    return built
