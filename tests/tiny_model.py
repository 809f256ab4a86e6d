"""Train a tiny nnU-Net model on a raw dataset, all steps in one process (one torch/nnU-Net import
instead of one per stock command: about half the time of the four commands on 2 CPUs).

Usage (environment as after ``eval "$(nnunet_ts env --root ROOT)"``)::

    python tests/tiny_model.py DATASET_ID

Steps: nnU-Net's fingerprint, plans and 3d_fullres preprocessing (plan_and_preprocess_api),
``3d_tiny`` added with patch 16x32x32, then ``TinyBudgetTrainer`` fold 0 on the CPU.
"""
import os
import sys


def main(dataset_id: int) -> None:
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from nnunet_ts.planners.tiny_plans import TinyPlan, add_tiny_configuration

    extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=False, clean=True, verbose=False)
    plan_experiments([dataset_id])
    preprocess([dataset_id], configurations=("3d_fullres",), num_processes=(1,), verbose=False)
    name = maybe_convert_to_dataset_name(dataset_id)
    add_tiny_configuration(os.path.join(os.environ["nnUNet_preprocessed"], name, "nnUNetPlans.json"),
                           TinyPlan(patch_size=(16, 32, 32)))
    # only now: nnU-Net's planner crashes with nnUNet_n_proc_DA=0 (see README)
    os.environ["nnUNet_n_proc_DA"] = "0"
    from nnunetv2.run.run_training import run_training

    run_training(str(dataset_id), "3d_tiny", 0, "TinyBudgetTrainer", device=torch.device("cpu"))


if __name__ == "__main__":  # nnU-Net's worker pools spawn processes that re-import this file
    main(int(sys.argv[1]))
