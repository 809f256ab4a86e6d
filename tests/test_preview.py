"""The PNG preview (nnunet_ts.outputs.preview): size, physical aspect, and the red overlay exactly
where the lesion is, located through the figure's own mm-to-pixel transform."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread

from nnunet_ts.errors import InputError
from nnunet_ts.outputs import measure_lesions, render_preview, write_preview
from nnunet_ts.outputs.preview import preview_size

SHAPE = (24, 64, 72)              # z, y, x
SPACING = (0.7, 0.8, 2.0)         # x, y, z mm


@pytest.fixture(scope="module")
def case():
    z, y, x = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    px, py, pz = x * SPACING[0], y * SPACING[1], z * SPACING[2]
    hu = np.full(SHAPE, -1000, np.int16)
    hu[((px - 25) / 22) ** 2 + ((py - 25) / 18) ** 2 <= 1] = 30                     # body
    hu[((px - 19) / 8) ** 2 + ((py - 25) / 12) ** 2 <= 1] = -850                    # a lung
    hu[((px - 33) / 8) ** 2 + ((py - 25) / 12) ** 2 <= 1] = -850                    # the other
    mask = ((px - 18) ** 2 + (py - 24) ** 2 + (pz - 20) ** 2 <= 5 ** 2).astype(np.uint8)
    mask[2:4, 40:44, 50:56] = 1   # a small second lesion elsewhere
    hu[mask > 0] = 20
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(SPACING)
    image.SetOrigin((-30.0, -20.0, 100.0))
    return hu, mask, image, measure_lesions(mask, image)


def coloured(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not grey (the CT and all text are grey or black, the overlay is red)."""
    return (rgb.max(-1) - rgb.min(-1)) > 0.1


def test_preview_png_size_and_overlay_position(tmp_path, case):
    hu, mask, image, lesions = case
    path = write_preview(hu, mask, image, lesions, tmp_path / "preview.png")
    rgb = imread(path)[..., :3]
    width, height = preview_size()
    assert rgb.shape[:2] == (height, width)
    fig = render_preview(hu, mask, image, lesions)
    fig.canvas.draw()
    axial = fig.axes[0]
    lesion = lesions[0]
    assert lesion.axial_slice == 10
    # the lesion's centre on its axial slice, mm from the image corner -> pixel (row from the top)
    col, up = axial.transData.transform((18 + SPACING[0] / 2, 24 + SPACING[1] / 2))
    row = height - up
    r, g, b = rgb[int(row), int(col)]
    assert r > g + 0.2 and r > b + 0.2  # red over grey
    # every coloured pixel of the axial panel lies on the lesion (radius 5 mm) or its outline
    box = axial.get_window_extent()
    rows, cols = np.nonzero(coloured(rgb))
    inside = (cols >= box.x0) & (cols <= box.x1) & (height - rows >= box.y0) & (height - rows <= box.y1)
    mm = axial.transData.inverted().transform(np.column_stack([cols[inside] + 0.5, height - rows[inside] - 0.5]))
    distance = np.hypot(mm[:, 0] - (18 + SPACING[0] / 2), mm[:, 1] - (24 + SPACING[1] / 2))
    assert inside.sum() > 100 and distance.max() < 5 + 1.5
    # 10 mm beside it, in the lung: grey
    col, up = axial.transData.transform((18 + 12, 24))
    r, g, b = rgb[int(height - up), int(col)]
    assert r == pytest.approx(g, abs=0.02) and g == pytest.approx(b, abs=0.02)
    # the close-up: a 40 mm square (3 x the 10.x mm diameter is less) centred on the lesion, outlined in red
    zoom = fig.axes[3]
    (x0, x1), (y1, y0) = zoom.get_xlim(), zoom.get_ylim()
    assert (x1 - x0, y1 - y0) == pytest.approx((40, 40))
    centre = (18 + SPACING[0] / 2, 24 + SPACING[1] / 2)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx(centre, abs=0.2)  # the voxelised sphere's centroid
    box = zoom.get_window_extent()
    panel = coloured(rgb)[int(height - box.y1):int(height - box.y0), int(box.x0):int(box.x1)]
    assert panel.sum() > 50


def test_preview_keeps_the_physical_aspect(case):
    hu, mask, image, lesions = case
    fig = render_preview(hu, mask, image, lesions)
    fig.canvas.draw()
    nz, ny, nx = SHAPE
    expected = [nx * SPACING[0] / (ny * SPACING[1]), nx * SPACING[0] / (nz * SPACING[2]),
                ny * SPACING[1] / (nz * SPACING[2])]
    got = [ax.get_window_extent().width / ax.get_window_extent().height for ax in fig.axes[:3]]
    assert got == pytest.approx(expected, rel=0.02)
    # and one scale (pixels per mm) for the three views
    widths_mm = [nx * SPACING[0], nx * SPACING[0], ny * SPACING[1]]
    scales = [ax.get_window_extent().width / w for ax, w in zip(fig.axes[:3], widths_mm)]
    assert scales == pytest.approx([scales[0]] * 3, rel=0.02)


def test_preview_without_tumour(tmp_path, case):
    hu, _, image, _ = case
    empty = np.zeros(SHAPE, np.uint8)
    path = write_preview(hu, empty, image, [], tmp_path / "empty.png")
    rgb = imread(path)[..., :3]
    assert not coloured(rgb).any()
    fig = render_preview(hu, empty, image, [])
    assert fig._suptitle.get_text() == "no tumour found"
    assert fig.axes[0].get_title() == f"axial, slice {SHAPE[0] // 2}"


def test_preview_with_probability_panel(tmp_path, case):
    hu, mask, image, lesions = case
    probability = np.where(mask > 0, 0.9, 0.02).astype(np.float32)
    path = write_preview(hu, mask, image, lesions, tmp_path / "p.png", probability=probability)
    width, height = preview_size(with_probability=True)
    assert imread(path).shape[:2] == (height, width)
    with pytest.raises(InputError, match="probability map has shape"):
        write_preview(hu, mask, image, lesions, tmp_path / "bad.png", probability=probability[:-1])
    assert not (tmp_path / "bad.png").exists()
