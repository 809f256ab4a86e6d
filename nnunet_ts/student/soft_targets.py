"""Soft targets through nnU-Net's preprocessing: same transpose and crop as the CT, linear resampling.

nnU-Net preprocesses labels as integers (one-hot + argmax resampling, int16 on disk), which destroys a
probability map. This module preprocesses the soft targets of pseudo cases next to nnU-Net's data,
exactly onto the voxel grid of the preprocessed CT:

1. read the NIfTI with the plans' image reader (the one that read the CT),
2. transpose with the plans' ``transpose_forward``,
3. crop with the bounding box nnU-Net recorded for the case (``bbox_used_for_cropping``),
4. resample linearly (trilinear, half-voxel-centred like nnU-Net's resampling: output voxel ``o``
   samples input coordinate ``(o + 0.5) * n_in / n_out - 0.5``, clamped at the border) to the shape
   of the preprocessed case,
5. store as ``<case>_soft.npy`` (uint8, ``round(255 p)``: quantisation error <= 1/510) in the
   configuration's data folder (``nnUNet_preprocessed/DatasetXXX/<data_identifier>/``).

nnU-Net ignores ``.npy`` files there when it lists cases, and deletes the folder when it
preprocesses again, so a soft target never outlives the data it was made for. A soft file older
than its case's ``.pkl`` or its raw NIfTI counts as stale and is made again.

Strong cases get no file: their target is nnU-Net's own preprocessed mask.

Run it as ``nnunet_ts soft-targets -d ID -c CONFIG`` after ``nnUNetv2_plan_and_preprocess``; the
student trainers also call :func:`ensure_soft_targets` when they start, so forgetting it costs only
time at the first training.
"""
from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.atomic import is_current, mark_current, save_npy_atomic

SOFT_SUFFIX = "_soft.npy"
QUANTIZATION_LEVELS = 255


def soft_target_file(data_folder: str | Path, case_id: str) -> Path:
    """Where the preprocessed soft target of ``case_id`` lives in a configuration's data folder."""
    return Path(data_folder) / f"{case_id}{SOFT_SUFFIX}"


def quantize(probability: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 ``round(255 p)`` (values outside [0, 1] are clipped first)."""
    return np.round(np.clip(probability, 0.0, 1.0) * QUANTIZATION_LEVELS).astype(np.uint8)


def dequantize(stored: np.ndarray) -> np.ndarray:
    """uint8 from :func:`quantize` -> float32 probability."""
    return stored.astype(np.float32) * np.float32(1.0 / QUANTIZATION_LEVELS)


def resample_linear(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Trilinear resampling of a (z, y, x) array to ``shape``, nnU-Net's voxel-centre convention.

    Same grid as ``skimage.transform.resize(order=1, mode='edge', anti_aliasing=False)`` (what
    nnU-Net's resampling uses), computed with torch (``align_corners=False``). float32 out.
    """
    import torch

    array = np.asarray(array, dtype=np.float32)
    if tuple(array.shape) == tuple(shape):
        return array.copy()
    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
        out = torch.nn.functional.interpolate(tensor, size=tuple(int(s) for s in shape),
                                              mode="trilinear", align_corners=False)
    return out[0, 0].numpy()


def preprocess_soft_target(soft_file: str | Path, properties: dict, shape: Sequence[int],
                           plans_manager, what: str = "soft target") -> np.ndarray:
    """One raw soft target -> float32 (z, y, x) on the preprocessed grid of its case.

    Args:
        soft_file: the raw NIfTI (foreground probability on the CT's grid).
        properties: the case's preprocessing record (``<case>.pkl``).
        shape: spatial shape of the preprocessed case.
        plans_manager: nnU-Net's ``PlansManager`` of the plans the case was preprocessed with.
        what: what the file is, for the error message (``segbox_targets`` reuses this path).

    Raises:
        InputError: the soft target's grid does not fit the CT's (shape before cropping).
    """
    from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice

    reader = plans_manager.image_reader_writer_class()
    soft, _ = reader.read_images([str(soft_file)])
    soft = soft.transpose([0, *[i + 1 for i in plans_manager.transpose_forward]])[0]
    if tuple(soft.shape) != tuple(properties["shape_before_cropping"]):
        raise InputError(f"{what} {soft_file} has shape {soft.shape} after nnU-Net's transpose, "
                         f"the CT had {tuple(properties['shape_before_cropping'])}; it must share the "
                         f"CT's voxel grid")
    soft = soft[bounding_box_to_slice(properties["bbox_used_for_cropping"])]
    return np.clip(resample_linear(soft, shape), 0.0, 1.0)


def _case_shape(data_folder: Path, case_id: str) -> tuple[int, ...]:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    dataset = infer_dataset_class(str(data_folder))(str(data_folder), [case_id])
    data, _, _, _ = dataset.load_case(case_id)
    return tuple(data.shape[1:])


def ensure_soft_targets(data_folder: str | Path, raw_soft_folder: str | Path, case_ids: Sequence[str],
                        plans_manager, file_ending: str = ".nii.gz", overwrite: bool = False,
                        progress: Callable[[int], object] | None = None,
                        log: Callable[[str], object] | None = None) -> list[str]:
    """Preprocess the soft targets of ``case_ids`` that are missing or stale; returns those made.

    Args:
        data_folder: the configuration's preprocessed data folder (holds ``<case>.pkl``).
        raw_soft_folder: the raw dataset's soft-target folder (``<case><file_ending>``).
        case_ids: pseudo cases.
        plans_manager: nnU-Net ``PlansManager`` of these plans.
        overwrite: make every file again.
        progress: called with the number of cases checked so far.
        log: called once with a line saying how many files will be made (when any).

    Raises:
        InputError: a case is not preprocessed or its raw soft target is missing.
    """
    data_folder, raw_soft_folder = Path(data_folder), Path(raw_soft_folder)
    todo = []
    for case_id in case_ids:
        pkl = data_folder / f"{case_id}.pkl"
        raw = raw_soft_folder / f"{case_id}{file_ending}"
        if not pkl.is_file():
            raise InputError(f"case {case_id} is not preprocessed ({pkl} missing); run "
                             f"nnUNetv2_plan_and_preprocess for this configuration first")
        stored = soft_target_file(data_folder, case_id)
        # without the raw dataset (training from preprocessed data only) a stored file is trusted
        if not overwrite and is_current(stored, pkl, *([raw] if raw.is_file() else [])):
            continue
        if not raw.is_file():
            raise InputError(f"soft target {raw} of pseudo case {case_id} is missing; the student "
                             f"dataset must hold one per pseudo case (write_student_dataset)")
        todo.append((case_id, pkl, raw))
    if todo and log is not None:
        log(f"preprocessing {len(todo)} soft target(s) into {data_folder}")
    for done, (case_id, pkl, raw) in enumerate(todo, start=1):
        with pkl.open("rb") as f:
            properties = pickle.load(f)
        soft = preprocess_soft_target(raw, properties, _case_shape(data_folder, case_id), plans_manager)
        target = soft_target_file(data_folder, case_id)
        save_npy_atomic(target, quantize(soft))  # folds training at once may both write it
        mark_current(target, pkl, raw)
        if progress is not None:
            progress(done)
    return [case_id for case_id, _, _ in todo]


def preprocess_dataset_soft_targets(preprocessed_dataset: str | Path, raw_dataset: str | Path,
                                    configuration: str, plans_identifier: str = "nnUNetPlans",
                                    overwrite: bool = False,
                                    progress: Callable[[int], object] | None = None) -> tuple[Path, list[str]]:
    """Soft targets of every pseudo case of a student dataset for one configuration.

    Returns:
        (the configuration's data folder, the case ids made now).

    Raises:
        InputError: no plans, unknown configuration, not a student dataset, data not preprocessed.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ts.datasets.student import read_sources, soft_targets_folder

    preprocessed_dataset, raw_dataset = Path(preprocessed_dataset), Path(raw_dataset)
    plans_file = preprocessed_dataset / f"{plans_identifier}.json"
    if not plans_file.is_file():
        raise InputError(f"{plans_file} does not exist; run nnUNetv2_plan_and_preprocess first")
    plans = PlansManager(str(plans_file))
    if configuration not in plans.available_configurations:
        raise InputError(f"{plans_file} has no configuration {configuration!r} (has: "
                         f"{', '.join(plans.available_configurations)})")
    dataset_json_file = raw_dataset / "dataset.json"
    if not dataset_json_file.is_file():
        raise InputError(f"{dataset_json_file} does not exist; is {raw_dataset} the raw student dataset?")
    dataset_json = json.loads(dataset_json_file.read_text())
    sources = read_sources(dataset_json_file)
    data_folder = preprocessed_dataset / plans.get_configuration(configuration).data_identifier
    if not data_folder.is_dir():
        raise InputError(f"{data_folder} does not exist; run nnUNetv2_plan_and_preprocess -d <id> "
                         f"-c {configuration} first")
    pseudo = sorted(c for c, s in sources.items() if s == "pseudo")
    made = ensure_soft_targets(data_folder, soft_targets_folder(raw_dataset, dataset_json), pseudo, plans,
                               dataset_json.get("file_ending", ".nii.gz"), overwrite, progress)
    return data_folder, made
