"""The student dataset: CT only as input, a hard mask per case, and soft targets for pseudo cases.

Layout (an nnU-Net raw dataset plus two folders nnU-Net ignores)::

    DatasetXXX_Name/
      imagesTr/<case>_0000.nii.gz     CT (channel 'CT')
      labelsTr/<case>.nii.gz          hard mask 0/1: nnU-Net's bookkeeping (foreground sampling,
                                      validation); for pseudo cases the teacher's map >= 0.5
      softTargetsTr/<case>.nii.gz     pseudo cases only: float32 foreground probability in [0, 1],
                                      the CT's voxel grid (strong cases: their mask is the target)
      segboxesTr/<case>.nii.gz        optional, any case: the real annotated segbox (uint8 0/1), for
                                      a dual-decoder student
      dataset.json                    nnU-Net's, plus the keys below
      splits_final.json               folds grouped by patient, balanced by tumour volume

``dataset.json`` extra keys (nnU-Net keeps unknown keys): ``nnunet_ts_kind`` = ``"student"``,
``nnunet_ts_sources`` = {case: ``"strong"`` | ``"pseudo"``}, ``nnunet_ts_soft_targets`` = the soft
target folder name, ``nnunet_ts_segboxes`` = the segbox folder name (or null when no case has one).

The dataset is written in a hidden sibling folder and renamed into place when complete; an existing
dataset with the same id is replaced only with ``overwrite``.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.images import check_same_geometry, read_image, write_image
from nnunet_ts.nnunet.paths import dataset_folder_name, folders_with_id

SOURCES: tuple[str, ...] = ("strong", "pseudo")
SOFT_TARGETS_DIR = "softTargetsTr"
SEGBOXES_DIR = "segboxesTr"
FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, "tumour": 1}
PSEUDO_THRESHOLD = 0.5


@dataclass(frozen=True)
class StudentCase:
    """One training case of the student.

    Attributes:
        case_id: nnU-Net case identifier (letters, digits, '_', '-').
        ct: CT image (NIfTI).
        source: ``strong`` (human mask) or ``pseudo`` (teacher's probability map).
        mask: binary mask on the CT grid. Required for strong cases; for pseudo cases optional
            (default: soft target >= 0.5).
        soft_target: pseudo cases: foreground probability in [0, 1] on the CT grid.
        segbox: optional segbox (0/1) on the CT grid, e.g. a pseudo case's real drawn boxes.
        patient_id: splits keep one patient's scans in one fold (default: the case id).
        checked_volume_mm3: for a pseudo case whose soft target and mask files its caller wrote and
            checked itself (the pseudo-label step, which verifies them by their SHA-256): the mask's
            tumour volume. Both files are then copied as they are, without being read again; they
            must be ``.nii.gz`` files on exactly the CT's grid, float32 in [0, 1] and uint8 0/1.
    """

    case_id: str
    ct: Path
    source: str
    mask: Path | None = None
    soft_target: Path | None = None
    segbox: Path | None = None
    patient_id: str | None = None
    checked_volume_mm3: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"case {self.case_id}: source {self.source!r} must be one of {', '.join(SOURCES)}")
        if self.source == "strong" and self.mask is None:
            raise InputError(f"case {self.case_id}: a strong case needs its mask")
        if self.source == "strong" and self.soft_target is not None:
            raise InputError(f"case {self.case_id}: a strong case learns from its mask; give a soft "
                             f"target only for pseudo cases")
        if self.source == "pseudo" and self.soft_target is None:
            raise InputError(f"case {self.case_id}: a pseudo case needs its soft target (the teacher's "
                             f"probability map)")
        if self.checked_volume_mm3 is not None and (self.source != "pseudo" or self.mask is None):
            raise InputError(f"case {self.case_id}: only a pseudo case with its mask can come checked")


def _read_soft_target(path: Path, ct_geometry, ct_path: Path) -> tuple[np.ndarray, bool]:
    """(soft target as float32 (z, y, x), whether its file can be copied as it is: float32, the CT's
    exact header), checked: CT grid, finite (read_image), values in [0, 1]."""
    soft, geometry = read_image(path, "soft target")
    check_same_geometry(ct_geometry, ct_path, geometry, path)
    unchanged = soft.dtype == np.float32 and _copyable(path, geometry, ct_geometry)
    soft = soft.astype(np.float32)
    low, high = float(soft.min()), float(soft.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"soft target {path} has values in [{low:g}, {high:g}]; it must be a "
                         f"foreground probability in [0, 1] (apply the softmax/sigmoid first)")
    return soft, unchanged


def _read_binary(path: Path, what: str, ct_geometry, ct_path: Path) -> tuple[np.ndarray, bool]:
    """(the 0/1 array as uint8, whether its file can be copied as it is: uint8, the CT's exact header)."""
    array, geometry = read_image(path, what)
    check_same_geometry(ct_geometry, ct_path, geometry, path)
    if not _binary(array):
        raise InputError(f"{what} {path} must hold only 0 and 1, found {np.unique(array)[:6].tolist()}; "
                         f"a {what} is binary")
    return array.astype(np.uint8), array.dtype == np.uint8 and _copyable(path, geometry, ct_geometry)


def _binary(array: np.ndarray) -> bool:
    """Only 0 and 1 (an integer image by its range, without sorting its voxels)."""
    if array.size == 0:
        return True
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return bool(array.min() >= 0 and array.max() <= 1)
    return bool(((array == 0) | (array == 1)).all())


def _copyable(path: Path, geometry, ct_geometry) -> bool:
    """A checked input file the dataset can take byte for byte: NIfTI-gz on exactly the CT's grid."""
    return str(path).endswith(FILE_ENDING) and geometry == ct_geometry


def _read_ct(path: Path):
    """(geometry, CT array or None): None when the file, checked whole, can be copied as it is (an
    integer ``.nii.gz``: nothing to check voxel by voxel, so it is neither decoded nor encoded again)."""
    import SimpleITK as sitk

    from nnunet_ts.io.image_files import image_information
    from nnunet_ts.io.images import read_header

    if str(path).endswith(FILE_ENDING):
        geometry = read_header(path, "CT")  # the whole file verified, no voxel array built
        if "int" in sitk.GetPixelIDValueAsString(image_information(path, "CT").GetPixelID()):
            return geometry, None
    ct, geometry = read_image(path, "CT")
    return geometry, ct


def _put(dest: Path, source: Path, array: np.ndarray | None, geometry, copy: bool) -> None:
    if copy:  # the checked file itself: re-encoding a clinical CT costs seconds and changes nothing
        shutil.copyfile(source, dest)
    else:
        write_image(dest, array, geometry)


def _write_case(case: StudentCase, root: Path) -> tuple[float, bool]:
    """Check and write one case; returns (tumour volume of its hard mask in mm^3, has segbox).

    Inputs that are already what the dataset holds (``.nii.gz`` on exactly the CT's grid, in the
    dataset's data type) are copied byte for byte after their checks; others are written anew. A case
    that comes checked (``StudentCase.checked_volume_mm3``) has its soft target and mask copied unread.
    """
    geometry, ct = _read_ct(case.ct)
    if case.checked_volume_mm3 is not None:
        soft, soft_copy, mask, mask_copy = None, True, None, True
    else:
        soft, soft_copy = (_read_soft_target(case.soft_target, geometry, case.ct) if case.soft_target is not None
                           else (None, False))
        if case.mask is not None:
            mask, mask_copy = _read_binary(case.mask, "mask", geometry, case.ct)
        else:
            mask, mask_copy = (soft >= PSEUDO_THRESHOLD).astype(np.uint8), False
    segbox, segbox_copy = (_read_binary(case.segbox, "segbox", geometry, case.ct) if case.segbox is not None
                           else (None, False))
    _put(root / "imagesTr" / f"{case.case_id}_0000{FILE_ENDING}", case.ct, ct, geometry, ct is None)
    _put(root / "labelsTr" / f"{case.case_id}{FILE_ENDING}", case.mask, mask, geometry, mask_copy)
    if case.soft_target is not None:
        _put(root / SOFT_TARGETS_DIR / f"{case.case_id}{FILE_ENDING}", case.soft_target, soft, geometry, soft_copy)
    if segbox is not None:
        _put(root / SEGBOXES_DIR / f"{case.case_id}{FILE_ENDING}", case.segbox, segbox, geometry, segbox_copy)
    volume = float(case.checked_volume_mm3) if mask is None else float(mask.sum()) * geometry.voxel_volume_mm3
    return volume, segbox is not None


def write_student_dataset(cases: Sequence[StudentCase], dataset_id: int, name: str,
                          raw_root: str | Path, *, num_folds: int = 5, seed: int = 0,
                          overwrite: bool = False,
                          progress: Callable[[int], object] | None = None) -> Path:
    """Write ``raw_root/DatasetXXX_Name`` (layout in the module docstring); returns the folder.

    Args:
        cases: strong and pseudo training cases.
        dataset_id, name: nnU-Net dataset id (1-999) and name.
        raw_root: the ``nnUNet_raw`` folder.
        num_folds: folds of ``splits_final.json`` (capped by the number of patients).
        seed: breaks ties when assigning patients to folds.
        overwrite: replace an existing dataset with this id (once the new one is complete).
        progress: called with the number of cases written so far.

    Raises:
        InputError: bad input (missing or unreadable files, grids differ, a soft target outside
            [0, 1], non-binary masks, duplicate case ids, fewer than 2 patients, an existing dataset
            without ``overwrite``). Nothing is written then.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    from nnunet_ts.datasets.resume import WorkFolder
    from nnunet_ts.datasets.splits import grouped_splits

    raw_root = Path(raw_root)
    target = raw_root / dataset_folder_name(dataset_id, name)
    existing = folders_with_id(raw_root, dataset_id)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists (dataset id {dataset_id}); choose another id "
                         f"or pass overwrite=True to replace it")
    ids = [c.case_id for c in cases]
    if not ids:
        raise InputError("no cases given; a student dataset needs strong and/or pseudo cases")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"case ids must be unique, found {', '.join(duplicates)} more than once")
    patients = [c.patient_id or c.case_id for c in cases]
    if len(set(patients)) < 2:
        raise InputError(f"all {len(cases)} cases belong to one patient; cross-validation needs at "
                         f"least 2 patients")

    # built in a hidden work folder and renamed into place when complete (datasets.resume); unlike
    # write_dataset's, an error discards it: the inputs are the pseudo-label step's, which resumes itself
    folder = WorkFolder(target, {"student_dataset": target.name}, resume=False)
    work = folder.path
    for sub in ("imagesTr", "labelsTr", SOFT_TARGETS_DIR, SEGBOXES_DIR):
        (work / sub).mkdir(parents=True)
    try:
        volumes, any_segbox = [], False
        for done, case in enumerate(cases, start=1):
            volume, has_segbox = _write_case(case, work)
            volumes.append(volume)
            any_segbox |= has_segbox
            if progress is not None:
                progress(done)
        if not any_segbox:
            (work / SEGBOXES_DIR).rmdir()
        sources = {c.case_id: c.source for c in cases}
        generate_dataset_json(
            str(work), channel_names={"0": "CT"}, labels=LABELS, num_training_cases=len(cases),
            file_ending=FILE_ENDING, dataset_name=target.name,
            description="nnunet_ts student dataset: CT, hard masks, soft targets of pseudo cases",
            nnunet_ts_kind="student", nnunet_ts_sources=sources,
            nnunet_ts_soft_targets=SOFT_TARGETS_DIR,
            nnunet_ts_segboxes=SEGBOXES_DIR if any_segbox else None)
        folds = min(num_folds, len(set(patients)))
        splits = grouped_splits(ids, patients, volumes, folds, seed)
        (work / "splits_final.json").write_text(json.dumps(splits, indent=2))
    except BaseException:
        folder.discard()
        raise
    folder.finish()
    for old in existing:
        if old != target and old.exists():
            shutil.rmtree(old)
    return target


def read_sources(dataset_json: dict | str | Path) -> dict[str, str]:
    """{case id: "strong" | "pseudo"} of a student dataset (a dataset.json dict or path).

    Raises:
        InputError: the dataset.json has no ``nnunet_ts_sources`` (not a student dataset) or an
            unknown source.
    """
    where = "dataset.json"
    if not isinstance(dataset_json, dict):
        where = str(dataset_json)
        dataset_json = json.loads(Path(dataset_json).read_text())
    sources = dataset_json.get("nnunet_ts_sources")
    if not isinstance(sources, dict):
        raise InputError(f"{where} has no 'nnunet_ts_sources'; a student dataset records which cases "
                         f"are strong and which pseudo (write it with write_student_dataset)")
    bad = {k: v for k, v in sources.items() if v not in SOURCES}
    if bad:
        raise InputError(f"{where}: unknown source(s) {bad}; use one of {', '.join(SOURCES)}")
    return dict(sources)


def soft_targets_folder(raw_dataset: Path, dataset_json: dict) -> Path:
    """The raw dataset's soft-target folder (``nnunet_ts_soft_targets``, default softTargetsTr)."""
    return Path(raw_dataset) / dataset_json.get("nnunet_ts_soft_targets", SOFT_TARGETS_DIR)
