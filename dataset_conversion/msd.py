"""Medical Segmentation Decathlon Task06_Lung (NIfTI) -> cohort + teacher/student/weak datasets.

Layout read::

    Task06_Lung/imagesTr/lung_001.nii.gz   CT (HU)
    Task06_Lung/labelsTr/lung_001.nii.gz   tumour mask on the CT grid
    Task06_Lung/imagesTs/...               no labels: reported as dropped

Every MSD case is its own patient. Masks are binarised (> 0); a label whose grid differs from its
CT's is dropped with the difference named, not resampled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_ts.dataset_conversion.common import ConversionOptions, Dropped, run_conversion, safe_id, write_case_files
from nnunet_ts.errors import InputError

SOURCE = "msd"


def _nifti_stem(path: Path) -> str:
    return path.name[:-len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem


def find_items(src: Path) -> list[tuple[str, object]]:
    """(key, (image, label or None)) for every image of imagesTr and imagesTs."""
    items = []
    for folder in ("imagesTr", "imagesTs"):
        for image in sorted((src / folder).glob("*.nii*")) if (src / folder).is_dir() else []:
            if image.name.startswith("."):
                continue  # macOS '._lung_001.nii.gz' resource forks ship in the MSD tar
            stem = _nifti_stem(image)
            stem = stem[:-5] if stem.endswith("_0000") else stem
            label = src / "labelsTr" / image.name.replace("_0000.nii", ".nii")
            items.append((f"{folder}/{image.name}", (image, label if folder == "imagesTr" else None, stem)))
    return items


def convert_case(item, folder: Path) -> list:
    """One MSD image (+ label) into the cohort folder."""
    import SimpleITK as sitk

    from nnunet_ts.io.images import check_finite, check_same_geometry, geometry_of, read_image, read_sitk

    image_path, label_path, stem = item
    if label_path is None:
        return [Dropped(str(image_path), "no label (imagesTs of the MSD task has none)")]
    if not label_path.is_file():
        raise InputError(f"{image_path}: label {label_path} is missing; restore it from the MSD download")
    ct = read_sitk(image_path, "CT")  # checked: whole file, 3D, one channel
    geometry = geometry_of(ct)
    check_finite(image_path, sitk.GetArrayViewFromImage(ct), "CT")
    mask, label_geometry = read_image(label_path, "label")
    check_same_geometry(geometry, image_path, label_geometry, label_path)
    if ct.GetPixelID() != sitk.sitkInt16:
        ct = sitk.Cast(sitk.Round(ct) if "float" in ct.GetPixelIDTypeAsString() else ct, sitk.sitkInt16)
    assert geometry_of(ct).mismatch(geometry) is None
    case_id = f"msd_{safe_id(stem)}"
    return [write_case_files(folder, case_id, case_id, ct, (mask > 0).astype(np.uint8), None,
                             source=str(image_path))]


def convert_msd_lung(src: str | Path, raw: str | Path, options: ConversionOptions,
                     cohort: str | Path | None = None, progress: bool = True) -> dict:
    """Convert MSD Task06_Lung; returns the conversion report (see ``dataset_conversion.common``).

    Args:
        src: the ``Task06_Lung`` folder.
        raw: the ``nnUNet_raw`` folder the datasets are written to.
        options: dataset ids, subsets, segbox form, lung cropping.
        cohort: folder for the converted NIfTI cohort and report (default ``raw/cohorts/msd``).
    """
    src, raw = Path(src), Path(raw)
    if not (src / "imagesTr").is_dir():
        raise InputError(f"{src} has no imagesTr folder; point to the extracted Task06_Lung folder")
    cohort = Path(cohort) if cohort is not None else raw / "cohorts" / SOURCE
    return run_conversion(SOURCE, find_items(src), convert_case, src, raw, cohort, options,
                          progress=progress)
