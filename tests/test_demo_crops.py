"""The demo's crop bookkeeping: crop predictions pasted back onto the whole CT, held-out masks linked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnunet_ts.datasets.lung_crop import CropPlan, LungCrop
from nnunet_ts.demo.crops import link_held_out_masks, paste_predictions
from nnunet_ts.errors import InputError
from nnunet_ts.io.images import Geometry, read_image, write_image
from nnunet_ts.io.manifest import CaseRecord, write_manifest

GEOMETRY = Geometry((4, 6, 8), (1.5, 1.0, 2.0), (10.0, -5.0, 3.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
# right lung: x 0..4, left lung: x 3..8 (they overlap in x 3)
PLAN = CropPlan(GEOMETRY, (LungCrop("right", (0, 1, 0), (4, 5, 4)), LungCrop("left", (1, 0, 3), (4, 6, 8))),
                10.0, "classical")


def test_crop_predictions_are_pasted_back_onto_the_whole_ct(tmp_path):
    crops, plans, out = tmp_path / "crops", tmp_path / "plans", tmp_path / "pasted"
    crops.mkdir()
    plans.mkdir()
    PLAN.save(plans / "c1_crop.json")
    right = np.zeros((4, 4, 4), np.uint8)
    right[2, 2, 3] = 1  # whole-CT voxel (2, 3, 3), inside the overlap; the left crop says 0 there
    left = np.zeros((3, 6, 5), np.uint8)
    left[0, 0, 4] = 1  # whole-CT voxel (1, 0, 7)
    for side, array, crop in (("right", right, PLAN.crops[0]), ("left", left, PLAN.crops[1])):
        write_image(crops / f"c1_{side}.nii.gz", array, Geometry(crop.shape_zyx, GEOMETRY.spacing, GEOMETRY.origin,
                                                                  GEOMETRY.direction))
    assert paste_predictions(crops, plans, ["c1"], out) == 1
    pasted, geometry = read_image(out / "c1.nii.gz")
    assert geometry.mismatch(GEOMETRY) is None  # the whole CT's grid, origin included
    assert sorted(map(tuple, np.argwhere(pasted))) == [(1, 0, 7), (2, 3, 3)]  # tumour where either crop says so
    assert not list(tmp_path.glob("*.partial"))
    (crops / "c1_left.nii.gz").unlink()
    with pytest.raises(InputError, match="c1_left.nii.gz is missing"):
        paste_predictions(crops, plans, ["c1"], out)
    with pytest.raises(InputError, match="c2_crop.json is missing"):
        paste_predictions(crops, plans, ["c2"], out)


def test_held_out_masks_are_linked_and_required(tmp_path):
    mask = tmp_path / "t_mask.nii.gz"
    write_image(mask, np.ones(GEOMETRY.shape_zyx, np.uint8), GEOMETRY)
    manifest = tmp_path / "cases.csv"
    write_manifest(manifest, [CaseRecord("t", "p1", "test", Path("t.nii.gz"), mask),
                              CaseRecord("s", "p2", "strong", Path("s.nii.gz"), mask)])
    assert link_held_out_masks(manifest, tmp_path / "gt") == 1
    assert (tmp_path / "gt" / "t.nii.gz").resolve() == mask.resolve()
    write_manifest(manifest, [CaseRecord("t", "p1", "test", Path("t.nii.gz"))])
    with pytest.raises(InputError, match="held-out case t .* has no mask"):
        link_held_out_masks(manifest, tmp_path / "gt")
