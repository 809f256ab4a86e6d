"""The demo report's figures: a bar chart of DSC and lesion F1, and image panels of test cases.

* ``bar_chart.png``: DSC and lesion F1 per network on the test set's tumour-bearing cases, mean ± std over
  cases, without and with LCC;
* ``panels/<case>.png``: the axial slice of largest tumour area of a test case: CT, box, ground truth,
  baseline, SO and DO predictions of training seed 0 on the whole CT (each network's case DSC in its title).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nnunet_ts.demo.config import MODEL, MODELS, Run
from nnunet_ts.evaluation.folder import PER_CASE_NAME

POST_LABELS = {"no_postprocessing": "none", "largest_component": "LCC"}
PANEL_MODELS = ("baseline", "so_student", "do_student")
CT_WINDOW_HU = (-1000.0, 400.0)
ZOOM_VOXELS = 48  # side of the zoomed window of the panels' bottom row


def bar_chart(results: dict, path: Path) -> Path | None:
    """DSC and lesion F1 (mean ± std, %) per network, without and with LCC; None without results.

    ``results``: ``{model key: {post-processing: {metric: {"mean", "std"}}}}`` (``results.set_table`` rows).
    """
    models = [m for m in MODELS if m.key in results]
    if not models:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(models))
    for ax, (metric, name) in zip(axes, (("dsc", "DSC"), ("f1", "lesion F1"))):
        for j, (post, label) in enumerate(POST_LABELS.items()):
            stats = [results[m.key].get(post, {}).get(metric) or {} for m in models]
            means = [100 * (s.get("mean") or 0.0) for s in stats]
            stds = [100 * (s.get("std") or 0.0) for s in stats]
            ax.bar(x + (j - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3,
                   label="no post-processing" if label == "none" else "largest component")
        ax.set_xticks(x, [m.label.replace(" (", "\n(") for m in models], fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel(f"{name} % (tumour-bearing test cases)")
        ax.set_title(name)
        ax.axvline(1.5, color="grey", lw=0.8, ls="--")
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def choose_panel_cases(sizes: dict[str, int], n: int) -> list[str]:
    """``n`` cases with tumour, spread from the largest to the smallest tumour volume (voxels)."""
    with_tumour = sorted((c for c, v in sizes.items() if v > 0), key=lambda c: (-sizes[c], c))
    if len(with_tumour) <= n:
        return with_tumour
    picks = np.linspace(0, len(with_tumour) - 1, n).round().astype(int)
    return [with_tumour[i] for i in dict.fromkeys(picks)]


def write_panels(demo, out: Path, cases: list[str]) -> list[Path]:
    """One PNG per chosen case of ``cases``: CT, box, ground truth, baseline, SO, DO (seed 0) on one axial slice."""
    from nnunet_ts.boxes.segbox import segbox_from_mask
    from nnunet_ts.io.images import read_image
    from nnunet_ts.io.manifest import read_manifest

    labels = demo.held_out_masks()
    if demo.config.panels < 1 or not labels.is_dir() or not cases:
        return []
    panel_runs = {k: Run(MODEL[k], 0) for k in PANEL_MODELS}
    if not all(demo.predictions(r).is_dir() for r in panel_runs.values()):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masks = {c: read_image(labels / f"{c}.nii.gz")[0] > 0 for c in cases}
    chosen = choose_panel_cases({c: int(m.sum()) for c, m in masks.items()}, demo.config.panels)
    case_dsc = {k: _per_case_dsc(demo.evaluation(r, "no_postprocessing") / PER_CASE_NAME)
                for k, r in panel_runs.items()}
    cts = {r.case_id: r.ct for r in read_manifest(demo.cases)}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case in chosen:
        ct, geometry = read_image(cts[case])
        gt = masks[case]
        box = segbox_from_mask(gt)
        z = int(np.argmax(gt.reshape(gt.shape[0], -1).sum(1)))
        columns = [("CT", None), ("box", box > 0), ("ground truth", gt)]
        for key, run in panel_runs.items():
            pred = read_image(demo.predictions(run) / f"{case}.nii.gz")[0] > 0
            dsc = case_dsc[key].get(case)
            columns.append((f"{MODEL[key].label}" + ("" if dsc is None else f"\nDSC {100 * dsc:.0f} %"), pred))
        aspect = geometry.spacing_zyx[1] / geometry.spacing_zyx[2]  # rows: y, columns: x
        zoom = _zoom_window(gt[z], ZOOM_VOXELS)
        fig, axes = plt.subplots(2, len(columns), figsize=(2.4 * len(columns), 5.0))
        for row, window in enumerate((np.s_[:, :], zoom)):
            for ax, (title, mask) in zip(axes[row], columns):
                ax.imshow(ct[z][window], cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], aspect=aspect)
                if mask is not None:
                    shown = mask[z][window]
                    ax.imshow(np.ma.masked_where(~shown, shown), cmap="autumn", alpha=0.55, vmin=0, vmax=1,
                              aspect=aspect)
                    if title not in ("ground truth", "box") and gt[z][window].any():
                        ax.contour(gt[z][window], levels=[0.5], colors="cyan", linewidths=0.7)
                if row == 0:
                    ax.set_title(title, fontsize=8)
                ax.axis("off")
        fig.suptitle(f"{case}, axial slice z={z}; bottom row: {ZOOM_VOXELS} voxels around the tumour "
                     f"(cyan outline: ground truth)", fontsize=9)
        fig.tight_layout()
        path = out / f"{case}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _zoom_window(mask_2d: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size`` x ``size`` window (clipped to the image) centred on the mask's centre of mass."""
    centre = np.argwhere(mask_2d).mean(0) if mask_2d.any() else np.array(mask_2d.shape) / 2
    window = []
    for c, n in zip(centre, mask_2d.shape):
        start = int(min(max(round(c) - size // 2, 0), max(n - size, 0)))
        window.append(slice(start, start + size))
    return tuple(window)


def _per_case_dsc(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {r["case_id"]: float(r["dsc"]) for r in csv.DictReader(f)}
