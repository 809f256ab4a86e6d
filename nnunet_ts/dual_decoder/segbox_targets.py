"""Segbox targets of the dual-decoder student, on the voxel grid of nnU-Net's preprocessed cases.

The student's box decoder learns, for every training case, a segbox (``nnunet_ts.boxes.segbox``) stored as
``<case>_segbox.npy`` (uint8 0/1, the preprocessed case's (z, y, x) shape) in the configuration's data
folder, next to the soft targets (``soft_targets``):

* strong cases: derived from nnU-Net's preprocessed mask, rectangles in the CT's axial slices
  (the axial axis is where ``transpose_forward`` put the CT's axis 0). Deriving it on the mask's own
  grid means the segbox contains the mask exactly;
* pseudo cases: the **real annotated** segbox (``segboxesTr/<case>.nii.gz`` of the student dataset),
  sent through the soft targets' preprocessing (plans' reader, ``transpose_forward``, nnU-Net's crop,
  linear resampling) and thresholded at 0.5: each box edge lands within half a voxel of where the
  resampled step crosses half height, the rule nnU-Net's linear label resampling uses for masks.

A pseudo case without an annotated segbox is an error, never silently replaced by the box of its
pseudo-label: the point of the box decoder on pseudo cases is the human's box.

Files older than the case's ``.pkl`` (or the raw segbox) are made again; nnU-Net deletes the folder
when it preprocesses again. The form each strong case's segbox was made in is recorded in
``<data folder>_segbox_targets.json`` next to the data folder (inside it, a .json file would stop
nnU-Net's ``infer_dataset_class``): asking for another form (``plan-dual --segbox-mode``)
makes that case's segbox again, logged; configurations sharing a data folder therefore should not
train with different forms at the same time.
"""
from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nnunet_ts.boxes.segbox import SegboxMode, segbox_from_mask
from nnunet_ts.errors import InputError
from nnunet_ts.io.atomic import is_current, mark_current, save_npy_atomic, write_text_atomic
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD

SEGBOX_SUFFIX = "_segbox.npy"
RECORD_SUFFIX = "_segbox_targets.json"  # {strong case id: segbox form of its stored segbox}


def segbox_target_file(data_folder: str | Path, case_id: str) -> Path:
    """Where the preprocessed segbox of ``case_id`` lives in a configuration's data folder."""
    return Path(data_folder) / f"{case_id}{SEGBOX_SUFFIX}"


def segboxes_folder(raw_dataset: str | Path, dataset_json: dict) -> Path | None:
    """The raw student dataset's annotated-segbox folder (``nnunet_ts_segboxes``), None if it has none."""
    name = dataset_json.get("nnunet_ts_segboxes")
    return Path(raw_dataset) / name if name else None


def segbox_from_preprocessed_mask(seg: np.ndarray, transpose_forward: Sequence[int],
                                  mode: SegboxMode = "per_lesion") -> np.ndarray:
    """Segbox of a preprocessed mask, rectangles in the CT's axial slices.

    Args:
        seg: nnU-Net's preprocessed segmentation, (1, a, b, c) or (a, b, c); > 0 is tumour (nnU-Net
            marks voxels outside the nonzero region -1).
        transpose_forward: the plans' axis order; the CT's axial axis (its axis 0) is preprocessed axis
            ``transpose_forward.index(0)``.
        mode: segbox form (``segbox.segbox_from_mask``).
    Returns:
        uint8 0/1 array of the spatial shape of ``seg``.
    """
    mask = np.asarray(seg)
    mask = (mask[0] if mask.ndim == 4 else mask) > 0
    axial = list(transpose_forward).index(0)
    segbox = segbox_from_mask(np.moveaxis(mask, axial, 0), mode)
    return np.ascontiguousarray(np.moveaxis(segbox, 0, axial)).astype(np.uint8)


def preprocess_annotated_segbox(segbox_file: str | Path, properties: dict, shape: Sequence[int],
                                plans_manager) -> np.ndarray:
    """One raw annotated segbox (0/1 on the CT's grid) -> uint8 0/1 on the preprocessed grid of its case.

    Raises:
        InputError: the segbox's grid does not fit the CT's.
    """
    from nnunet_ts.student.soft_targets import preprocess_soft_target

    resampled = preprocess_soft_target(segbox_file, properties, shape, plans_manager, what="segbox")
    return (resampled >= SEGBOX_THRESHOLD).astype(np.uint8)


def segbox_record_file(data_folder: str | Path) -> Path:
    """The record of the strong cases' segbox forms: beside the data folder, as nnU-Net wants it clean."""
    return Path(data_folder).parent / f"{Path(data_folder).name}{RECORD_SUFFIX}"


def _read_record(data_folder: Path) -> dict:
    record = segbox_record_file(data_folder)
    return json.loads(record.read_text()) if record.is_file() else {}


def _update_record(data_folder: Path, forms: dict) -> None:
    record = segbox_record_file(data_folder)
    # re-read just before: another fold's entries survive unless written at once
    write_text_atomic(record, json.dumps({**_read_record(data_folder), **forms}, indent=1, sort_keys=True))


def ensure_segbox_targets(data_folder: str | Path, strong_ids: Sequence[str], pseudo_ids: Sequence[str],
                          plans_manager, raw_segbox_folder: str | Path | None,
                          file_ending: str = ".nii.gz", mode: SegboxMode = "per_lesion",
                          overwrite: bool = False, log: Callable[[str], object] | None = None) -> list[str]:
    """Make the segbox targets of the given cases that are missing or stale; returns the case ids made.

    Args:
        data_folder: the configuration's preprocessed data folder (``<case>.pkl``, nnU-Net's data).
        strong_ids: cases whose segbox is derived from their preprocessed mask (in ``mode``).
        pseudo_ids: cases whose segbox is their annotated one, ``raw_segbox_folder/<case><file_ending>``.
        plans_manager: nnU-Net ``PlansManager`` of these plans.
        raw_segbox_folder: the raw dataset's segbox folder (None: the dataset has none).
    Raises:
        InputError: a case is not preprocessed, or a pseudo case has no annotated segbox.
    """
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    data_folder = Path(data_folder)
    raw_folder = Path(raw_segbox_folder) if raw_segbox_folder is not None else None
    recorded = _read_record(data_folder)
    other_form = [c for c in strong_ids if recorded.get(c, mode) != mode]
    if other_form and log is not None:
        log(f"{len(other_form)} strong case(s) in {data_folder} have segbox targets of another form than "
            f"{mode!r}: making them again")
    todo: list[tuple[str, Path | None]] = []
    for case_id, source in [*((c, "strong") for c in strong_ids), *((c, "pseudo") for c in pseudo_ids)]:
        pkl = data_folder / f"{case_id}.pkl"
        if not pkl.is_file():
            raise InputError(f"case {case_id} is not preprocessed ({pkl} missing); run "
                             f"nnUNetv2_plan_and_preprocess for this configuration first")
        raw = raw_folder / f"{case_id}{file_ending}" if source == "pseudo" and raw_folder is not None else None
        stored = segbox_target_file(data_folder, case_id)
        inputs = [pkl, *([raw] if raw is not None and raw.is_file() else [])]
        if not overwrite and is_current(stored, *inputs) and (source == "pseudo" or recorded.get(case_id) == mode):
            continue
        if source == "pseudo" and (raw is None or not raw.is_file()):
            where = raw if raw is not None else "segboxesTr/ (the dataset.json has no 'nnunet_ts_segboxes')"
            raise InputError(f"pseudo case {case_id} has no annotated segbox ({where}); the dual-decoder "
                             f"student learns pseudo cases' real boxes: write the student dataset with "
                             f"StudentCase(segbox=...) for every pseudo case")
        todo.append((case_id, raw))
    if todo and log is not None:
        log(f"preprocessing {len(todo)} segbox target(s) into {data_folder}")
    dataset = infer_dataset_class(str(data_folder))(str(data_folder), [c for c, _ in todo]) if todo else None
    for case_id, raw in todo:
        data, seg, _, properties = dataset.load_case(case_id)
        if raw is None:
            segbox = segbox_from_preprocessed_mask(seg, plans_manager.transpose_forward, mode)
        else:
            with (data_folder / f"{case_id}.pkl").open("rb") as f:
                properties = pickle.load(f)
            segbox = preprocess_annotated_segbox(raw, properties, data.shape[1:], plans_manager)
        save_npy_atomic(segbox_target_file(data_folder, case_id), segbox)
        mark_current(segbox_target_file(data_folder, case_id), data_folder / f"{case_id}.pkl",
                     *([raw] if raw is not None else []))
    made_strong = [c for c, raw in todo if raw is None]
    if made_strong:
        _update_record(data_folder, {c: mode for c in made_strong})
    return [case_id for case_id, _ in todo]
