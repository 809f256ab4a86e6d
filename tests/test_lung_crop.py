"""Crop / paste-back around each lung on synthetic thorax CTs (lung masks themselves: test_lung_mask.py)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.boxes.segbox import SliceRectangle, rectangles_to_segbox, slice_rectangles
from nnunet_ts.datasets.lung_crop import (  # the lung-mask names lung_crop has always offered, too
    CropPlan,
    LungCrop,
    LungMask,
    classical_lung_mask,
    crop_array,
    crop_geometry,
    crop_rectangles,
    paste_back,
    plan_crops,
)
from nnunet_ts.io.images import Geometry
from nnunet_ts.synth import SynthConfig, generate_case

ROTATED = tuple(sitk.VersorRigid3DTransform((0.1, 0.05, 0.2, 0.97)).GetMatrix())  # a proper rotation


@pytest.fixture(scope="module")
def case():
    return generate_case(5, SynthConfig.compact((24, 64, 64)))


def image_of(case, direction=None):
    image = sitk.GetImageFromArray(case.ct)
    image.SetSpacing(case.geometry.spacing)
    image.SetOrigin(case.geometry.origin)
    image.SetDirection(direction or case.geometry.direction)
    return image


def test_crop_then_paste_back_is_the_identity(case):
    image = image_of(case, ROTATED)
    geometry = Geometry(case.geometry.shape_zyx, case.geometry.spacing, case.geometry.origin, ROTATED)
    lungs = LungMask(classical_lung_mask(case.ct, ROTATED, geometry.spacing), "classical")
    plan = plan_crops(lungs, geometry, margin_mm=10.0)
    assert [c.side for c in plan.crops] == ["right", "left"]
    plan = CropPlan.from_json(json.loads(json.dumps(plan.to_json())))  # the saved metadata suffices
    covered = paste_back([np.ones(c.shape_zyx, np.uint8) for c in plan.crops], plan) > 0
    assert covered[case.mask > 0].all()  # every tumour voxel lies in a crop (tumours are in the lungs)
    for crop in plan.crops:
        # a crop's grid is the original grid restricted: same physical points as RegionOfInterest
        roi = sitk.RegionOfInterest(image, crop.shape_zyx[::-1], crop.start_zyx[::-1])
        g = crop_geometry(plan.geometry, crop)
        np.testing.assert_allclose(g.origin, roi.GetOrigin(), atol=1e-9)
        assert g.direction == roi.GetDirection() and g.spacing == roi.GetSpacing()
        assert np.array_equal(crop_array(case.ct, crop), sitk.GetArrayFromImage(roi))
    mask_back = paste_back([crop_array(case.mask, c) for c in plan.crops], plan)
    assert np.array_equal(mask_back, case.mask)
    ct_back = paste_back([crop_array(case.ct, c) for c in plan.crops], plan, fill=-1024)
    assert np.array_equal(ct_back[covered], case.ct[covered]) and (ct_back[~covered] == -1024).all()
    soft = np.random.default_rng(0).random((2, *case.mask.shape)).astype(np.float32)  # channels first
    soft_back = paste_back([crop_array(soft, c) for c in plan.crops], plan)
    assert np.array_equal(soft_back[:, covered], soft[:, covered])
    # boxes: cropped rectangles are the segbox cropped
    rects = slice_rectangles(case.mask)
    for crop in plan.crops:
        assert np.array_equal(rectangles_to_segbox(crop_rectangles(rects, crop), crop.shape_zyx),
                              crop_array(rectangles_to_segbox(rects, case.mask.shape), crop))


def test_crop_rectangles_clips_and_shifts():
    crop = LungCrop("right", (2, 10, 20), (8, 30, 40))
    rects = [SliceRectangle(3, 5, 15, 25, 50), SliceRectangle(9, 12, 14, 22, 24), SliceRectangle(4, 31, 35, 21, 22)]
    assert crop_rectangles(rects, crop) == [SliceRectangle(1, 0, 5, 5, 19)]
