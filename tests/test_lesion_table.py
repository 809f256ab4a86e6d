"""Lesion measurements (nnunet_ts.outputs.lesions) on shapes of known size, and the table files.

Each voxel counts as the box it covers, so a block of 10 x 20 x 30 mm of voxels measures exactly that;
expected values below are computed by hand from the shapes.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.errors import InputError
from nnunet_ts.outputs import Lesion, format_lesion_table, measure_lesions, read_lesion_table, write_lesion_table
from nnunet_ts.outputs.geometry import axial_diameters
from nnunet_ts.outputs.lesions import CSV_COLUMNS

IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)


def ct(shape_zyx, spacing_xyz=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=IDENTITY, hu=-800):
    image = sitk.GetImageFromArray(np.full(shape_zyx, hu, np.int16))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def block(shape_zyx, start_zyx, size_zyx) -> np.ndarray:
    mask = np.zeros(shape_zyx, np.uint8)
    mask[tuple(slice(s, s + n) for s, n in zip(start_zyx, size_zyx))] = 1
    return mask


# A 10 (x) x 20 (y) x 30 (z) mm block at several spacings. On every slice the longest diameter is the
# 22.36 mm diagonal; the longest chord perpendicular to it is 10 * 22.36 / 20 = 11.18 mm.
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 1.0, 2.0), (0.5, 0.5, 2.5), (2.0, 0.8, 3.0)])
def test_block_of_known_size(spacing):
    sx, sy, sz = spacing
    size = (round(30 / sz), round(20 / sy), round(10 / sx))  # z, y, x voxels
    shape = (size[0] + 6, size[1] + 8, size[2] + 10)
    mask = block(shape, (2, 3, 4), size)
    (lesion,) = measure_lesions(mask, ct(shape, spacing))
    diagonal = math.hypot(10, 20)
    assert lesion.label == 1
    assert lesion.volume_ml == pytest.approx(6.0, abs=1e-3)
    assert lesion.axial_longest_mm == pytest.approx(diagonal, abs=0.01)
    assert lesion.axial_perpendicular_mm == pytest.approx(10 * diagonal / 20, abs=0.01)
    assert lesion.longest_3d_mm == pytest.approx(math.sqrt(10 ** 2 + 20 ** 2 + 30 ** 2), abs=0.01)
    assert lesion.slice_range == (2, 2 + size[0] - 1)
    # all slices tie: the one nearest the centroid, the lower of two
    assert lesion.axial_slice == 2 + (size[0] - 1) // 2
    centre = ((4 + (size[2] - 1) / 2) * sx, (3 + (size[1] - 1) / 2) * sy, (2 + (size[0] - 1) / 2) * sz)
    assert lesion.centroid_mm == pytest.approx(centre, abs=0.01)


@pytest.mark.parametrize("pixels, spacing, longest, perpendicular", [
    # square 20 x 20 mm: both diagonals
    (np.ones((20, 20), bool), (1.0, 1.0), math.hypot(20, 20), math.hypot(20, 20)),
    # one pixel of 0.5 x 2 mm: its diagonals
    (np.ones((1, 1), bool), (0.5, 2.0), math.hypot(0.5, 2), 0.5 * math.hypot(0.5, 2) / 2),
    # a diagonal line of 10 pixels touching at corners: end-corner distance, across one pixel
    (np.eye(10, dtype=bool), (1.0, 1.0), 10 * math.sqrt(2), math.sqrt(2)),
    # an L of two 10 x 2 bars: between the bars' outer ends; across the corner square's diagonal
    (np.pad(np.ones((10, 2), bool), ((0, 0), (0, 8))) | np.pad(np.ones((2, 10), bool), ((0, 8), (0, 0))),
     (1.0, 1.0), math.hypot(10, 10), 2 * math.sqrt(2)),
])
def test_axial_diameters_exact(pixels, spacing, longest, perpendicular):
    got_long, got_perp = axial_diameters(pixels, spacing)
    assert got_long == pytest.approx(longest, abs=1e-6)
    assert got_perp == pytest.approx(perpendicular, abs=1e-5)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 0.5), (0.6, 0.9)])
def test_disc_and_ellipse_diameters(spacing):
    """A disc of radius 10 mm: both diameters 20 mm within a voxel diagonal; an ellipse 24 x 10 mm:
    24 and 10 mm, same allowance."""
    sx, sy = spacing
    y, x = np.mgrid[:80, :80]
    px, py = (x - 40) * sx, (y - 40) * sy
    allowance = math.hypot(sx, sy)
    disc = px ** 2 + py ** 2 <= 10 ** 2
    long, perp = axial_diameters(disc, spacing)
    assert 20 - allowance <= perp <= long <= 20 + allowance
    ellipse = (px / 12) ** 2 + (py / 5) ** 2 <= 1
    long, perp = axial_diameters(ellipse, spacing)
    assert 24 - allowance <= long <= 24 + allowance
    assert 10 - allowance <= perp <= 10 + allowance


def test_best_axial_slice_is_the_widest():
    """A cone of discs: the slice with the widest disc is chosen, not the middle one."""
    shape = (9, 40, 40)
    mask = np.zeros(shape, np.uint8)
    y, x = np.mgrid[:40, :40]
    for z, r in zip(range(2, 7), (3, 5, 7, 12, 4)):
        mask[z] = (x - 20) ** 2 + (y - 20) ** 2 <= r ** 2
    (lesion,) = measure_lesions(mask, ct(shape, (0.8, 0.8, 2.0)))
    assert lesion.axial_slice == 5
    assert lesion.slice_range == (2, 6)
    assert 24 * 0.8 <= lesion.axial_longest_mm <= (24 + math.sqrt(2)) * 0.8


def test_lesions_ordered_by_volume_and_26_connected():
    shape = (20, 30, 30)
    mask = block(shape, (1, 1, 1), (2, 2, 2))        # 8 voxels, first in raster order
    mask |= block(shape, (10, 10, 10), (4, 4, 4))    # 64 voxels
    mask[18, 25, 25] = mask[19, 26, 26] = 1          # corner-touching pair: one lesion of 2 voxels
    lesions = measure_lesions(mask, ct(shape, (1.0, 1.0, 1.0)))
    assert [les.label for les in lesions] == [1, 2, 3]
    assert [les.volume_ml for les in lesions] == pytest.approx([0.064, 0.008, 0.002])
    assert lesions[0].slice_range == (10, 13) and lesions[2].slice_range == (18, 19)


def test_equal_volumes_keep_raster_order():
    shape = (10, 10, 30)
    mask = block(shape, (2, 2, 20), (2, 2, 2)) | block(shape, (2, 2, 2), (2, 2, 2))
    first, second = measure_lesions(mask, ct(shape))
    assert first.centroid_mm[0] == pytest.approx(2.5) and second.centroid_mm[0] == pytest.approx(20.5)


def test_centroid_in_patient_coordinates():
    """Origin and a direction that flips x and swaps nothing else: centroid = origin + D (spacing * index)."""
    shape = (10, 20, 20)
    mask = block(shape, (4, 6, 2), (2, 2, 4))   # index centre (x 3.5, y 6.5, z 4.5)
    image = ct(shape, (0.5, 1.5, 3.0), origin=(100.0, -50.0, 20.0), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    (lesion,) = measure_lesions(mask, image)
    assert lesion.centroid_mm == pytest.approx((100 - 3.5 * 0.5, -50 + 6.5 * 1.5, 20 + 4.5 * 3.0))


def test_mean_hu_and_probabilities():
    shape = (6, 10, 10)
    image = ct(shape, hu=-900)
    hu = sitk.GetArrayFromImage(image)
    hu[2:4, 2:6, 2:6] = 40
    hu[2:4, 2:6, 2:4] = -10  # half of the lesion
    image = sitk.GetImageFromArray(hu)
    mask = block(shape, (2, 2, 2), (2, 4, 4))
    probability = np.zeros(shape, np.float32)
    probability[2:4, 2:6, 2:6] = 0.6
    probability[2, 2, 2] = 1.0
    (lesion,) = measure_lesions(mask, image, probability=probability)
    assert lesion.mean_hu == pytest.approx(15.0)
    assert lesion.mean_probability == pytest.approx((31 * 0.6 + 1.0) / 32, abs=1e-4)
    assert lesion.max_probability == pytest.approx(1.0)
    (plain,) = measure_lesions(mask, image)
    assert plain.mean_probability is None and plain.max_probability is None


# Lungs along x (identity direction, LPS): right lung in columns 2-13, left lung in columns 26-37.
def lungs_map(shape):
    lungs = np.zeros(shape, np.uint8)
    lungs[:, 5:25, 2:14] = 1
    lungs[:, 5:25, 26:38] = 2
    return lungs


@pytest.mark.parametrize("columns, expected", [
    ((4, 8), "right"),            # inside the right lung
    ((30, 34), "left"),           # inside the left lung
    ((10, 30), "both"),           # through both lungs (and the mediastinum)
    ((11, 17), "right"),          # mostly mediastinum, 3 of its columns in the right lung
    ((21, 24), "left"),           # touches no lung: left of the midline between the lungs (x = 19.5)
    ((15, 19), "right"),          # touches no lung, right of the midline
])
def test_side_from_lungs(columns, expected):
    shape = (4, 30, 40)
    mask = np.zeros(shape, np.uint8)
    mask[1:3, 10:14, columns[0]:columns[1]] = 1
    (lesion,) = measure_lesions(mask, ct(shape), lungs=lungs_map(shape))
    assert lesion.side == expected


@pytest.mark.parametrize("x_direction, columns, expected", [
    (1, (5, 9), "right"),     # LPS: small x is the patient's right
    (1, (30, 34), "left"),
    (1, (16, 24), "both"),    # straddles the body midline (x = 20)
    (1, (16, 20), "right"),   # touches the midline but lies right of it
    (-1, (5, 9), "left"),     # x axis flipped by the direction: columns 5-9 are now the patient's left
])
def test_side_from_body_midline(x_direction, columns, expected):
    shape = (4, 30, 40)
    image = ct(shape, direction=(x_direction, 0, 0, 0, 1, 0, 0, 0, 1), hu=-1000)
    hu = sitk.GetArrayFromImage(image)
    hu[:, 5:25, 4:36] = 30   # body centred on column 19.5
    body = sitk.GetImageFromArray(hu)
    body.CopyInformation(image)
    mask = np.zeros(shape, np.uint8)
    mask[1:3, 10:14, columns[0]:columns[1]] = 1
    (lesion,) = measure_lesions(mask, body)
    assert lesion.side == expected


def test_side_unknown_without_lungs_or_body():
    shape = (4, 10, 10)
    (lesion,) = measure_lesions(block(shape, (1, 1, 1), (2, 2, 2)), ct(shape, hu=-1000))
    assert lesion.side == "unknown"


def test_empty_mask_gives_empty_table(tmp_path):
    shape = (4, 10, 10)
    assert measure_lesions(np.zeros(shape, np.uint8), ct(shape)) == []
    assert format_lesion_table([]) == "no tumour found"
    csv_path, json_path = write_lesion_table([], tmp_path / "case")
    assert csv_path.read_text().strip() == ",".join(CSV_COLUMNS)
    assert json.loads(json_path.read_text())["lesions"] == []
    assert read_lesion_table(csv_path) == [] and read_lesion_table(json_path) == []


@pytest.mark.parametrize("what, kwarg", [("probability map", "probability"), ("lung mask", "lungs")])
def test_shape_mismatch_is_an_input_error(what, kwarg):
    shape = (4, 10, 10)
    with pytest.raises(InputError, match=what):
        measure_lesions(np.ones(shape), ct(shape), **{kwarg: np.zeros((4, 10, 9))})
    with pytest.raises(InputError, match="tumour mask"):
        measure_lesions(np.ones((3, 10, 10)), ct(shape))


@pytest.mark.parametrize("with_probability", [True, False])
def test_table_round_trip(tmp_path, with_probability):
    shape = (12, 30, 30)
    mask = block(shape, (1, 2, 3), (5, 6, 7)) | block(shape, (8, 20, 20), (2, 3, 3))
    probability = np.where(mask > 0, 0.73, 0.1).astype(np.float32) if with_probability else None
    lesions = measure_lesions(mask, ct(shape, (0.7, 0.7, 2.5), origin=(-10.0, 5.0, -300.0)), probability=probability)
    csv_path, json_path = write_lesion_table(lesions, tmp_path / "case_001")
    assert (csv_path.name, json_path.name) == ("case_001.csv", "case_001.json")
    assert read_lesion_table(csv_path) == lesions
    assert read_lesion_table(json_path) == lesions
    doc = json.loads(json_path.read_text())
    assert doc["units"]["volume_ml"] == "ml" and doc["units"]["mean_hu"] == "HU"
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == list(CSV_COLUMNS) and len(rows) == 3
    assert rows[1].split(",")[CSV_COLUMNS.index("volume_ml")] == repr(lesions[0].volume_ml)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_read_lesion_table_rejects_other_files(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"cases": []}')
    with pytest.raises(InputError, match="not a lesion table"):
        read_lesion_table(other)
    with pytest.raises(InputError, match="does not exist"):
        read_lesion_table(tmp_path / "missing.csv")


def test_format_lesion_table():
    lesion = Lesion(label=1, volume_ml=6.0, axial_longest_mm=22.36, axial_perpendicular_mm=11.18, axial_slice=9,
                    longest_3d_mm=37.42, centroid_mm=(1.0, 2.0, 3.0), slice_range=(2, 16), side="left",
                    mean_hu=35.0, mean_probability=None, max_probability=None)
    text = format_lesion_table([lesion, Lesion(**{**lesion.__dict__, "label": 2, "volume_ml": 0.5})])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["#", "volume", "ml"]
    assert lines[1].split() == ["1", "6.00", "22.4", "11.2", "9", "37.4", "left", "35", "-"]
    assert lines[-1] == "2 lesion(s), 6.50 ml in total"


def test_oblique_direction_changes_only_the_centroid():
    """Sizes are the same in any orientation; the centroid follows origin + D (spacing * index)."""
    from nnunet_ts.synth.dicom_export import rotation

    shape, spacing, origin = (20, 30, 30), (0.5, 1.0, 2.0), (-40.0, 12.0, 300.0)
    mask = block(shape, (2, 3, 4), (15, 20, 20))
    direction = rotation()
    (straight,) = measure_lesions(mask, ct(shape, spacing, origin))
    (oblique,) = measure_lesions(mask, ct(shape, spacing, origin, tuple(direction.ravel())))
    for field in ("volume_ml", "axial_longest_mm", "axial_perpendicular_mm", "longest_3d_mm", "axial_slice"):
        assert getattr(oblique, field) == getattr(straight, field)
    index = np.array([4 + 9.5, 3 + 9.5, 2 + 7.0])
    assert oblique.centroid_mm == pytest.approx(tuple(origin + direction @ (index * spacing)), abs=0.01)
