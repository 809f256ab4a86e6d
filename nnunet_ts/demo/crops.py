"""The demo's lung crops: the cohort cropped once per lung, crop predictions pasted back onto the CT.

The paper trains its baseline and students on one crop per lung. The demo crops every case of the
manifest with :func:`nnunet_ts.datasets.lung_crop.crop_records` (CT, mask, boxes; ``<case>_right`` and
``<case>_left``) into ``OUT/cases_lung_crops/`` with its own ``cases.csv``; every nnU-Net dataset is
written from that manifest, so teachers, pseudo-labels and students all see the same crops. The networks
predict the held-out crops; :func:`paste_predictions` puts them back onto the whole CT (the plan in
``<case>_crop.json``), where they are scored against the whole CT's mask (:func:`link_held_out_masks`).
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError

CROP_PLAN_SUFFIX = "_crop.json"


def crop_cohort(manifest: Path, out_dir: Path) -> Path:
    """Crop every case of ``manifest`` around each lung into ``out_dir``; returns the crops' ``cases.csv``.

    A weak case keeps no mask in the crops' manifest (the students never see one), but a true mask on
    disk next to its CT (``<case>_mask.nii.gz``, as ``nnunet_ts synth`` writes) is cropped too, so the
    pseudo-labels can be scored against it.
    """
    from nnunet_ts.datasets.lung_crop import crop_records
    from nnunet_ts.io.manifest import read_manifest, write_manifest

    records = []
    for r in read_manifest(manifest):
        true_mask = Path(r.ct).with_name(f"{r.case_id}_mask.nii.gz")
        if r.subset == "weak" and r.mask is None and true_mask.is_file():
            r = replace(r, mask=true_mask)
        records.append(r)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cropped = [replace(c, mask=None) if c.subset == "weak" else c for c in crop_records(records, tmp)]
    write_manifest(tmp / "cases.csv", cropped)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir / "cases.csv"


def paste_predictions(crop_predictions: Path, crop_plans: Path, cases: list[str], out_dir: Path) -> int:
    """Paste each case's crop predictions (``<case>_<side>.nii.gz``, label maps) back onto its whole CT.

    Writes ``out_dir/<case>.nii.gz`` (uint8, the CT's grid; 0 outside every crop; where crops overlap a
    voxel is tumour when either crop says so). ``out_dir`` is replaced as a whole. Returns the number of
    cases written.

    Raises:
        InputError: a crop plan or a crop prediction is missing.
    """
    from nnunet_ts.datasets.lung_crop import CropPlan, paste_back
    from nnunet_ts.io.images import read_image, write_image

    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for case in cases:
        plan_file = crop_plans / f"{case}{CROP_PLAN_SUFFIX}"
        if not plan_file.is_file():
            raise InputError(f"{plan_file} is missing: the lung crops of case {case} are incomplete; "
                             f"delete {crop_plans} and rerun the demo")
        plan = CropPlan.load(plan_file)
        parts = []
        for crop in plan.crops:
            path = crop_predictions / f"{case}_{crop.side}.nii.gz"
            if not path.is_file():
                raise InputError(f"crop prediction {path} is missing; rerun the prediction step of this network")
            parts.append((read_image(path, "prediction")[0] > 0).astype(np.uint8))
        write_image(tmp / f"{case}.nii.gz", paste_back(parts, plan), plan.geometry)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return len(cases)


def link_held_out_masks(manifest: Path, out_dir: Path) -> int:
    """Links ``out_dir/<case>.nii.gz`` to the whole-CT mask of every held-out case; returns the count.

    Raises:
        InputError: a held-out case without a mask (it cannot be scored).
    """
    from nnunet_ts.io.manifest import read_manifest

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    n = 0
    for r in read_manifest(manifest):
        if r.subset != "test":
            continue
        if r.mask is None or not Path(r.mask).is_file():
            raise InputError(f"held-out case {r.case_id} of {manifest} has no mask; give every test case a mask")
        (out_dir / f"{r.case_id}.nii.gz").symlink_to(Path(r.mask).resolve())
        n += 1
    return n
