"""Planning and preprocessing a teacher dataset (CT + segbox) so the segbox stays a box.

nnU-Net's stock ``nnUNetv2_plan_and_preprocess`` resamples every channel with third-order splines,
so a box channel gets ramps of fractional values at its edges. ``plan_teacher`` runs nnU-Net's
own fingerprinting and planning, then preprocesses with :class:`SegboxPreprocessor`: nnU-Net's
``DefaultPreprocessor``, except that the segbox channel is resampled exactly as the mask is (the
configuration's segmentation resampling). The box channel on disk is then exactly 0/1, and it contains
every resampled mask voxel: both come from the same monotone interpolation kept where it reaches 0.5,
and the box contains the mask before resampling. With splines and a threshold instead, about 0.4 % of
the mask voxels of the demo's teacher dataset ended just outside their box, and the augmentation's zoom
(up to 1.4x) moved some of them more than a voxel away.

``spacing_from`` takes the 3d_fullres target spacing from another planned dataset (the student's):
teacher and student then see tumours at the same resolution, and the teacher's pseudo-labels are
computed at the resolution the student learns them at.

The plans keep ``DefaultPreprocessor`` as their preprocessor name (nnU-Net finds preprocessors by
name inside its own package only), so ``nnUNetv2_predict`` preprocesses inputs the stock way; the
``BoxTeacherTrainer`` network thresholds its segbox input itself, so both paths agree.

Usage::

    nnunet_ts plan-teacher -d 501 [--spacing-from 502]
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

from nnunet_ts.errors import InputError
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD, segbox_channel_index


class SegboxPreprocessor(DefaultPreprocessor):
    """nnU-Net's default preprocessing with the segbox channel resampled like the mask (0/1)."""

    def run_case_npy(self, data, seg, properties, plans_manager, configuration_manager, dataset_json):
        if isinstance(dataset_json, str):
            dataset_json = json.loads(Path(dataset_json).read_text())
        channel = segbox_channel_index(dataset_json)
        segbox = data[channel] >= SEGBOX_THRESHOLD
        data, seg, properties = super().run_case_npy(data, seg, properties, plans_manager,
                                                     configuration_manager, dataset_json)
        data[channel] = resample_segbox_like_mask(segbox, properties, plans_manager, configuration_manager,
                                                  data.shape[1:])
        return data, seg, properties


def resample_segbox_like_mask(segbox: np.ndarray, properties: dict, plans_manager, configuration_manager,
                              new_shape: Sequence[int]) -> np.ndarray:
    """The raw segbox (z, y, x, bool) transposed, cropped and resampled as ``DefaultPreprocessor`` does
    with the mask: the same crop (``properties["bbox_used_for_cropping"]``) and the configuration's
    segmentation resampling. Returns 0/1 float32 of ``new_shape``."""
    from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice

    segbox = segbox.transpose(plans_manager.transpose_forward)
    segbox = segbox[bounding_box_to_slice(properties["bbox_used_for_cropping"])]
    original_spacing = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    target_spacing = list(configuration_manager.spacing)
    if len(target_spacing) < segbox.ndim:  # 2d configurations keep the slice spacing
        target_spacing = [original_spacing[0]] + target_spacing
    resampled = configuration_manager.resampling_fn_seg(segbox[None].astype(np.int8), new_shape,
                                                        original_spacing, target_spacing)
    return (np.asarray(resampled[0]) > 0).astype(np.float32)


def target_spacing_of(plans_file: Path, configuration: str = "3d_fullres") -> list[float]:
    """The target spacing (nnU-Net's axis order, mm) of a configuration in a plans file."""
    if not plans_file.is_file():
        raise InputError(f"plans file {plans_file} does not exist; plan that dataset first "
                         f"(nnUNetv2_plan_and_preprocess -d <id> -c {configuration})")
    configurations = json.loads(plans_file.read_text()).get("configurations", {})
    name, seen = configuration, set()
    while name in configurations and name not in seen:
        seen.add(name)
        if "spacing" in configurations[name]:
            return [float(s) for s in configurations[name]["spacing"]]
        name = configurations[name].get("inherits_from")
    raise InputError(f"plans file {plans_file} has no spacing for configuration {configuration!r}; "
                     f"plan that dataset with nnUNetv2_plan_and_preprocess -c {configuration}")


@contextmanager
def _planner_safe_augmentation_workers():
    """nnU-Net 2.8.1's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0 (a
    setting users choose for CPU training); plan with the variable unset, then restore it."""
    value = os.environ.pop("nnUNet_n_proc_DA", None)
    try:
        yield
    finally:
        if value is not None:
            os.environ["nnUNet_n_proc_DA"] = value


def plan_teacher(dataset_id: int, raw_dataset: Path, preprocessed: Path,
                 configurations: Sequence[str] = ("3d_fullres",), spacing_from: Path | None = None,
                 num_processes: int = 2, verify_dataset_integrity: bool = True) -> Path:
    """Fingerprint, plan and preprocess a teacher dataset; returns the plans file.

    Args:
        dataset_id: the teacher dataset's id.
        raw_dataset: its raw folder (``$nnUNet_raw/DatasetXXX_Name``), to check channels early.
        preprocessed: ``$nnUNet_preprocessed``.
        configurations: configurations to preprocess.
        spacing_from: a plans file whose 3d_fullres spacing the teacher's 3d_fullres takes over.
        num_processes: worker processes for fingerprinting and preprocessing.
        verify_dataset_integrity: run nnU-Net's dataset checks first.

    Raises:
        InputError: no segbox channel in dataset.json, missing/unplanned ``spacing_from``.
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    dataset_json_file = raw_dataset / "dataset.json"
    if not dataset_json_file.is_file():
        raise InputError(f"{dataset_json_file} does not exist; write the dataset with "
                         f"`nnunet_ts dataset teacher` first")
    segbox_channel_index(json.loads(dataset_json_file.read_text()), str(dataset_json_file))
    spacing = target_spacing_of(spacing_from) if spacing_from is not None else None
    extract_fingerprints([dataset_id], num_processes=num_processes,
                         check_dataset_integrity=verify_dataset_integrity)
    with _planner_safe_augmentation_workers():
        _, plans_identifier = plan_experiment_dataset(dataset_id, overwrite_target_spacing=spacing)
    for configuration in configurations:
        SegboxPreprocessor().run(dataset_id, configuration, plans_identifier, num_processes)
    # with no configurations left, nnU-Net's own step only copies dataset.json and the ground truth
    preprocess_dataset(dataset_id, plans_identifier, configurations=[], num_processes=[])
    return preprocessed / raw_dataset.name / f"{plans_identifier}.json"
