"""Box perturbation (a reader's imprecise boxes): its ranges, axial slices kept on transposed data, and
neighbouring lesions kept apart; also through the teacher's augmentation transform."""
import numpy as np
import pytest
import torch

from nnunet_ts.boxes.perturbation import BoxPerturbation, lesion_rectangles, perturb_segbox
from nnunet_ts.boxes.segbox import label_lesions, rectangles_to_segbox, slice_rectangles
from nnunet_ts.teacher.segbox_transforms import StashSegboxTransform

SHAPE = (12, 48, 48)  # (z, y, x)


def _two_lesions(overlap: bool = True):
    """Two lesions (labelled 1, 2, not touching) and their per-lesion segbox; with ``overlap`` the boxes
    overlap: lesion 2 is an L whose bounding rectangle reaches into lesion 1's."""
    lesions = np.zeros(SHAPE, np.uint8)
    lesions[2:8, 6:16, 6:16] = 1
    if overlap:
        lesions[3:9, 12:23, 18:23] = 2
        lesions[3:9, 18:23, 12:23] = 2
    else:
        lesions[3:9, 30:40, 30:40] = 2
    segbox = np.zeros(SHAPE, np.uint8)
    for k in (1, 2):
        segbox |= rectangles_to_segbox(slice_rectangles(lesions == k, "per_slice"), SHAPE)
    return lesions, segbox


def _axial_rectangles_hold(segbox: np.ndarray, n_per_slice: int = 1) -> bool:
    """Every axial slice's box is the union of at most ``n_per_slice`` rectangles (exactly one: equal to its
    bounding rectangle)."""
    for z in np.flatnonzero(segbox.any(axis=(1, 2))):
        sl = segbox[z] > 0
        if n_per_slice == 1:
            ys, xs = np.flatnonzero(sl.any(1)), np.flatnonzero(sl.any(0))
            if not sl[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].all():
                return False
    return True


def test_defaults_are_sun_et_al_lesion_values():
    p = BoxPerturbation()
    assert (p.probability, p.scale, p.corner_shift) == (0.5, (0.9, 1.2), 0.1)


def test_side_ratio_and_centre_shift_stay_in_their_ranges_and_span_them():
    # side ratio: scale 0.9-1.2, each edge moved by < 0.1 side -> 0.7-1.4; centre moved by < 0.1 side
    rng = np.random.default_rng(0)
    ratios, shifts = [], []
    for side in (8, 12, 20, 30):
        segbox = np.zeros((3, 96, 96), np.uint8)
        lo = 48 - side // 2
        segbox[1, lo:lo + side, lo:lo + side] = 1
        for _ in range(150):
            out = perturb_segbox(segbox, BoxPerturbation(probability=1.0), rng)
            assert np.flatnonzero(out.any(axis=(1, 2))).tolist() == [1]  # the same axial slice
            assert _axial_rectangles_hold(out)
            (r,) = slice_rectangles(out)
            for a, b in ((r.y_min, r.y_max), (r.x_min, r.x_max)):
                new_side = b - a + 1
                assert 0.7 * side - 1 <= new_side <= 1.4 * side + 1, (side, new_side)
                centre_shift = (a + b) / 2 - (lo + lo + side - 1) / 2
                assert abs(centre_shift) <= 0.1 * side + 0.5, (side, centre_shift)
                ratios.append(new_side / side)
                shifts.append(centre_shift / side)
    assert min(ratios) < 0.82 and max(ratios) > 1.25  # the perturbation really spans its range
    assert min(shifts) < -0.05 and max(shifts) > 0.05


@pytest.mark.parametrize("transpose_forward", [[1, 2, 0], [2, 0, 1], [0, 2, 1]])
def test_transposed_data_keeps_axial_rectangles_on_the_axial_slices(transpose_forward):
    _, segbox = _two_lesions(overlap=False)
    moved = np.transpose(segbox, transpose_forward)  # how nnU-Net's preprocessing stores the case
    axial_axis = transpose_forward.index(0)
    config = BoxPerturbation(probability=1.0)

    def perturbed_back(axis: int) -> np.ndarray:
        out = perturb_segbox(moved, config, np.random.default_rng(3), axial_axis=axis)
        return np.transpose(out, np.argsort(transpose_forward))

    def axial_invariants_hold(out: np.ndarray) -> bool:
        same_slices = np.array_equal(out.any(axis=(1, 2)), segbox.any(axis=(1, 2)))
        per_lesion = [out[:, :, :26], out[:, :, 26:]]  # the two lesions lie apart in x
        return same_slices and all(_axial_rectangles_hold(part) for part in per_lesion)

    assert axial_invariants_hold(perturbed_back(axial_axis))
    if axial_axis != 0:  # what perturbing along the wrong axis did: rectangles across the axial slices
        assert not axial_invariants_hold(perturbed_back(0))


def test_neighbouring_lesions_keep_their_own_boxes():
    lesions, segbox = _two_lesions(overlap=True)
    assert label_lesions(lesions > 0)[1] == 2 and label_lesions(segbox)[1] == 1  # two lesions, one box blob
    exact = BoxPerturbation(probability=1.0, scale=(1.0, 1.0), corner_shift=0.0)
    rng = np.random.default_rng(0)
    # told the lesions, an identity perturbation gives the boxes back unchanged
    np.testing.assert_array_equal(perturb_segbox(segbox, exact, rng, lesions=lesions), segbox)
    # without them the two boxes are one blob: its rectangles are the common bounding rectangle
    merged = perturb_segbox(segbox, exact, rng)
    assert merged.sum() > segbox.sum() * 1.3
    rects = lesion_rectangles(segbox, lesions)
    assert len({r.lesion for r in rects}) == 2
    assert len(rects) == sum(len(slice_rectangles(lesions == k, "per_slice")) for k in (1, 2))


def test_teacher_transform_perturbs_along_the_axial_axis_and_keeps_lesions_apart():
    lesions, segbox = _two_lesions(overlap=True)
    transpose_forward = [1, 2, 0]
    image = torch.zeros((2, *np.transpose(segbox, transpose_forward).shape))
    image[1] = torch.from_numpy(np.transpose(segbox, transpose_forward).astype(np.float32))
    seg = torch.from_numpy(np.transpose(lesions > 0, transpose_forward)[None].astype(np.int16))
    exact = BoxPerturbation(probability=1.0, scale=(1.0, 1.0), corner_shift=0.0)
    out = StashSegboxTransform(1, exact, axial_axis=transpose_forward.index(0))(image=image, segmentation=seg)
    np.testing.assert_array_equal(out["regression_target"][0].numpy(), image[1].numpy())
    np.random.seed(1)
    moved = StashSegboxTransform(1, BoxPerturbation(probability=1.0), axial_axis=2)(image=image.clone(),
                                                                                  segmentation=seg)
    back = np.transpose(moved["regression_target"][0].numpy() > 0.5, np.argsort(transpose_forward))
    assert np.array_equal(back.any(axis=(1, 2)), segbox.any(axis=(1, 2)))
