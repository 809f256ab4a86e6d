"""A one-image check of a prediction: the largest lesion in axial, coronal and sagittal views, and
a close-up.

The CT is shown in a lung window (width 1500 HU, level -600 HU), the tumour mask as a translucent
red fill with a red outline, in millimetres (physical aspect ratio from the voxel spacing). Axial
views are in radiological convention (patient's right on the image's left, anterior up) for the
usual CT orientation; coronal and sagittal views have the head up. A fourth panel zooms the axial
view on the lesion (a square of three times its axial diameter, at least 40 mm) in a soft-tissue
window (level 40 HU, width 400 HU) with the outline only, so the tissue under it and its border with
the mediastinum or chest wall stay visible. The views are placed side by side at one scale (mm per
pixel) as large as the figure allows. With a probability map, a fifth panel shows it on the axial
slice. Below the views, one line per lesion (up to :data:`MAX_LEGEND_LINES`): label, volume, axial
diameters, slice, side.

Rendered by matplotlib's Agg canvas on a ``Figure`` object (no pyplot, no display, no global state).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.atomic import write_atomic
from nnunet_ts.outputs.lesions import Lesion

LUNG_WINDOW = (-1350.0, 150.0)  # HU: level -600, width 1500
SOFT_TISSUE_WINDOW = (-160.0, 240.0)  # HU: level 40, width 400 (mediastinal)
PANEL_INCHES = 4.0
DPI = 100
LEGEND_INCHES = 1.6
ZOOM_MIN_MM = 40.0
ZOOM_DIAMETERS = 3.0
MAX_LEGEND_LINES = 5
OVERLAY_RGBA = (1.0, 0.0, 0.0, 0.4)


def preview_size(with_probability: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`write_preview` writes."""
    panels = 5 if with_probability else 4
    return int(round(panels * PANEL_INCHES * DPI)), int(round((PANEL_INCHES + LEGEND_INCHES) * DPI))


def _lesion_line(lesion: Lesion) -> str:
    return (f"lesion {lesion.label}: {lesion.volume_ml:.2f} ml, axial {lesion.axial_longest_mm:.1f} x "
            f"{lesion.axial_perpendicular_mm:.1f} mm (slice {lesion.axial_slice}), 3D longest "
            f"{lesion.longest_3d_mm:.1f} mm, {lesion.side}")


def _centre(reference, lesion: Lesion | None, shape: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple]:
    """((z, y, x) voxel the views pass through, continuous (x, y) index of the lesion's centroid):
    the lesion's axial slice and centroid, or the image centre."""
    if lesion is None:
        return tuple(s // 2 for s in shape), ((shape[2] - 1) / 2, (shape[1] - 1) / 2)
    x, y, _ = reference.TransformPhysicalPointToContinuousIndex(lesion.centroid_mm)
    clip = lambda v, n: int(min(max(round(v), 0), n - 1))  # noqa: E731
    return (lesion.axial_slice, clip(y, shape[1]), clip(x, shape[2])), (x, y)


def _show(ax, image, overlay, extent, title, origin, cmap="gray", limits=LUNG_WINDOW, fill=True):
    ax.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1], extent=extent, origin=origin,
              interpolation="nearest", aspect="equal")
    if overlay is not None and overlay.any():
        if fill:
            rgba = np.zeros(overlay.shape + (4,))
            rgba[overlay] = OVERLAY_RGBA
            ax.imshow(rgba, extent=extent, origin=origin, interpolation="nearest", aspect="equal")
        ax.contour(overlay.astype(float), levels=[0.5], colors=[OVERLAY_RGBA[:3]], linewidths=1.0,
                   extent=extent, origin=origin)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("mm", fontsize=8)
    ax.tick_params(labelsize=7)


def _place_panels(fig, fields: list[tuple[float, float]]) -> list:
    """One axes per field, side by side at one scale (inches per mm) as large as the figure allows."""
    width, height = fig.get_size_inches()
    left, right, gap, top = 0.5, 0.2, 0.6, 0.75
    usable_w = width - left - right - gap * (len(fields) - 1)
    usable_h = height - top - LEGEND_INCHES
    scale = min(usable_w / sum(w for w, _ in fields), usable_h / max(h for _, h in fields))
    x = left + (usable_w - scale * sum(w for w, _ in fields)) / 2
    axes = []
    for w, h in fields:
        y = height - top - scale * h
        axes.append(fig.add_axes((x / width, y / height, scale * w / width, scale * h / height)))
        x += scale * w + gap
    return axes


def render_preview(hu: np.ndarray, mask: np.ndarray, reference, lesions: Sequence[Lesion], *,
                   probability: np.ndarray | None = None):
    """The preview as a matplotlib ``Figure`` (size :func:`preview_size`). Axes: axial, coronal,
    sagittal, axial close-up[, probability]; data coordinates are mm from the image corner (axial:
    x = column * spacing_x, y = row * spacing_y; a voxel's centre at (column + 0.5) * spacing_x).

    Args:
        hu: (z, y, x) CT in HU.
        mask: (z, y, x) nonzero = tumour.
        reference: SimpleITK image of the CT (spacing, origin, direction).
        lesions: from :func:`~nnunet_ts.outputs.lesions.measure_lesions`; the first (largest) is
            shown; none gives the central slices titled "no tumour found".
        probability: optional (z, y, x) tumour probability in [0, 1].

    Raises:
        InputError: arrays of different shapes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hu, tumour = np.asarray(hu), np.asarray(mask) != 0
    for what, array in (("tumour mask", tumour), ("probability map", probability)):
        if array is not None and array.shape != hu.shape:
            raise InputError(f"{what} has shape (z, y, x) {array.shape} but the CT has {hu.shape}")
    nz, ny, nx = hu.shape
    sx, sy, sz = reference.GetSpacing()
    lesion = lesions[0] if lesions else None
    (z, y, x), (cx, cy) = _centre(reference, lesion, hu.shape)
    width, height = preview_size(probability is not None)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    panels = 5 if probability is not None else 4
    # (width, height) mm of each panel's field: axial, coronal, sagittal, close-up square, probability
    fields = [(nx * sx, ny * sy), (nx * sx, nz * sz), (ny * sy, nz * sz), (ny * sy, ny * sy), (nx * sx, ny * sy)]
    axes = _place_panels(fig, fields[:panels])
    _show(axes[0], hu[z], tumour[z], (0, nx * sx, ny * sy, 0), f"axial, slice {z}", "upper")
    _show(axes[1], hu[:, y, :], tumour[:, y, :], (0, nx * sx, 0, nz * sz), f"coronal, row {y}", "lower")
    _show(axes[2], hu[:, :, x], tumour[:, :, x], (0, ny * sy, 0, nz * sz), f"sagittal, column {x}", "lower")
    if lesion is None:
        axes[3].set_axis_off()
    else:
        side = max(ZOOM_MIN_MM, ZOOM_DIAMETERS * lesion.axial_longest_mm)
        _show(axes[3], hu[z], tumour[z], (0, nx * sx, ny * sy, 0), f"lesion 1, slice {z} (soft tissue)", "upper",
              limits=SOFT_TISSUE_WINDOW, fill=False)
        mx, my = (cx + 0.5) * sx, (cy + 0.5) * sy
        axes[3].set_xlim(mx - side / 2, mx + side / 2)
        axes[3].set_ylim(my + side / 2, my - side / 2)
    if probability is not None:
        _show(axes[4], np.asarray(probability)[z], None, (0, nx * sx, ny * sy, 0), f"tumour probability, slice {z}",
              "upper", cmap="magma", limits=(0.0, 1.0))
    if lesion is None:
        fig.suptitle("no tumour found", fontsize=12)
        legend = ["central slices shown"]
    else:
        fig.suptitle(f"{len(lesions)} lesion(s), {sum(les.volume_ml for les in lesions):.2f} ml in total; "
                     f"views through lesion 1", fontsize=12)
        legend = [_lesion_line(les) for les in lesions[:MAX_LEGEND_LINES]]
        if len(lesions) > MAX_LEGEND_LINES:
            legend.append(f"... and {len(lesions) - MAX_LEGEND_LINES} smaller lesion(s) (see the lesion table)")
    fig.text(0.04, (LEGEND_INCHES - 0.5) / (PANEL_INCHES + LEGEND_INCHES), "\n".join(legend), va="top", ha="left",
             fontsize=9, family="monospace")
    return fig


def write_preview(hu: np.ndarray, mask: np.ndarray, reference, lesions: Sequence[Lesion], path: str | Path, *,
                  probability: np.ndarray | None = None) -> Path:
    """Write the preview PNG (see :func:`render_preview`) whole or not at all; returns ``path``."""
    fig = render_preview(hu, mask, reference, lesions, probability=probability)
    path = Path(path)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    return path
