import numpy as np
import pytest

from nnunet_ts.boxes.segbox import (
    SliceRectangle,
    label_lesions,
    lesion_boxes_3d,
    rectangles_to_segbox,
    segbox_from_mask,
    segbox_from_rectangles,
    slice_rectangles,
)


def two_lesions_one_slice() -> np.ndarray:
    """Two lesions side by side in slices 2-3 and an L-shaped lesion in slice 6."""
    mask = np.zeros((8, 10, 12), np.uint8)
    mask[2:4, 1:3, 1:3] = 1        # lesion A: y 1-2, x 1-2
    mask[2, 6:9, 8:11] = 1         # lesion B in slice 2 only: y 6-8, x 8-10
    mask[6, 2:7, 2] = 1            # L: vertical bar ...
    mask[6, 6, 2:6] = 1            # ... and foot
    return mask


def test_per_lesion_rectangles_are_exact():
    rects = slice_rectangles(two_lesions_one_slice(), "per_lesion")
    got = [(r.z, r.y_min, r.y_max, r.x_min, r.x_max) for r in rects]
    assert got == [(2, 1, 2, 1, 2), (2, 6, 8, 8, 10), (3, 1, 2, 1, 2), (6, 2, 6, 2, 5)]
    assert {r.lesion for r in rects if r.z == 2} == {1, 2}


def test_per_slice_rectangle_encloses_all_lesions_of_the_slice():
    rects = slice_rectangles(two_lesions_one_slice(), "per_slice")
    got = [(r.z, r.y_min, r.y_max, r.x_min, r.x_max) for r in rects]
    assert got == [(2, 1, 8, 1, 10), (3, 1, 2, 1, 2), (6, 2, 6, 2, 5)]


@pytest.mark.parametrize("mode, expected_voxels", [
    ("per_lesion", 4 + 9 + 4 + 5 * 4),   # slice 2: A 2x2 + B 3x3; slice 3: A; slice 6: L box 5x4
    ("per_slice", 8 * 10 + 4 + 5 * 4),   # slice 2: one 8x10 rectangle
    ("box3d", 2 * 4 + 9 + 5 * 4),        # A: 2 slices of 2x2; B: 1 slice 3x3; L: 1 slice 5x4
])
def test_segbox_voxel_counts(mode, expected_voxels):
    segbox = segbox_from_mask(two_lesions_one_slice(), mode)
    assert segbox.dtype == np.uint8 and set(np.unique(segbox)) <= {0, 1}
    assert int(segbox.sum()) == expected_voxels


def test_box3d_covers_lesion_extent_in_every_axis():
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[2, 2, 2] = mask[3, 3, 3] = mask[4, 4, 3] = 1  # one 26-connected diagonal lesion
    box = lesion_boxes_3d(mask)
    assert box[2:5, 2:5, 2:4].all() and int(box.sum()) == 3 * 3 * 2


def test_connectivity_decides_what_is_one_lesion():
    mask = np.zeros((4, 6, 6), np.uint8)
    mask[1, 1, 1] = mask[1, 2, 2] = 1  # touching by an in-plane corner only
    assert label_lesions(mask, 26)[1] == 1
    assert label_lesions(mask, 6)[1] == 2
    assert len(slice_rectangles(mask, "per_lesion", connectivity=6)) == 2


@pytest.mark.parametrize("seed", range(5))
def test_form_inclusions_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((12, 16, 16)) > 0.93).astype(np.uint8)
    per_lesion = segbox_from_mask(mask, "per_lesion")
    per_slice = segbox_from_mask(mask, "per_slice")
    box3d = segbox_from_mask(mask, "box3d")
    assert (per_lesion >= mask).all()
    assert (per_slice >= per_lesion).all()
    assert (box3d >= per_lesion).all()
    # a slice without tumour has no box
    empty = ~mask.any(axis=(1, 2))
    assert not per_lesion[empty].any() and not per_slice[empty].any()


def test_empty_mask_gives_no_rectangles_and_an_empty_segbox():
    mask = np.zeros((3, 4, 5), np.uint8)
    assert slice_rectangles(mask) == []
    for mode in ("per_lesion", "per_slice", "box3d"):
        assert not segbox_from_mask(mask, mode).any()


def test_voc_boxes_are_one_based_and_inclusive():
    r = SliceRectangle.from_voc(z=3, xmin=1, ymin=2, xmax=4, ymax=5)
    assert (r.z, r.y_min, r.y_max, r.x_min, r.x_max) == (3, 1, 4, 0, 3)
    segbox = rectangles_to_segbox([r], (5, 8, 8))
    assert int(segbox.sum()) == 4 * 4 and segbox[3, 1:5, 0:4].all()


def test_rectangles_round_trip_to_the_same_segbox():
    mask = two_lesions_one_slice()
    for mode in ("per_lesion", "per_slice"):
        rects = slice_rectangles(mask, "per_lesion")
        assert np.array_equal(segbox_from_rectangles(rects, mask.shape, mode), segbox_from_mask(mask, mode))
    rects = slice_rectangles(mask, "per_lesion")
    # box3d from drawn rectangles: 3D box of each blob of filled rectangles
    assert np.array_equal(segbox_from_rectangles(rects, mask.shape, "box3d"),
                          lesion_boxes_3d(rectangles_to_segbox(rects, mask.shape)))


@pytest.mark.parametrize("kwargs", [
    dict(z=0, y_min=3, y_max=2, x_min=0, x_max=1),   # empty rectangle
    dict(z=-1, y_min=0, y_max=2, x_min=0, x_max=1),  # negative index
])
def test_invalid_rectangles_are_refused(kwargs):
    with pytest.raises(ValueError):
        SliceRectangle(**kwargs)


def test_rectangle_outside_the_image_is_refused():
    with pytest.raises(ValueError, match="outside"):
        rectangles_to_segbox([SliceRectangle(0, 0, 9, 0, 1)], (2, 8, 8))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        segbox_from_mask(np.zeros((2, 2, 2)), "sphere")


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_two_voxels_of_a_thin_crop_are_two_lesions(connectivity):
    # a prediction cropped to its bounding box: shape (1, 3, 1), one background voxel between
    mask = np.array([True, False, True]).reshape(1, 3, 1)
    labels, n = label_lesions(mask, connectivity)
    assert n == 2 and labels.ravel().tolist() == [1, 0, 2]


def test_occupied_bounds_is_the_extent_of_the_nonzero_voxels():
    from nnunet_ts.boxes.segbox import occupied_bounds

    mask = np.zeros((6, 7, 8), np.uint8)
    assert occupied_bounds(mask) is None
    mask[1, 2, 7] = 1
    mask[4, 5, 0] = 1
    assert occupied_bounds(mask) == (slice(1, 5), slice(2, 6), slice(0, 8))
