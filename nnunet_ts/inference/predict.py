"""End-user prediction: a CT (NIfTI file or DICOM folder) in, a tumour mask in its exact geometry out.

The options follow the paper's released tool: a probability threshold (or the probabilities
themselves), a lung filter, morphological smoothing, a CPU switch, plus optional lung cropping as
in the student's training. The network runs through nnU-Net's own ``nnUNetPredictor`` (sliding
window, Gaussian weighting, test-time mirroring when the trainer allows it, folds averaged), so a
model predicts here exactly as with ``nnUNetv2_predict``.

Steps: read CT -> [lung mask -> one crop per lung] -> tumour probability per crop (nnU-Net
resamples to the model's spacing and back) -> paste crops back -> threshold -> [lung filter]
-> [smoothing] -> write with the input's size, spacing, origin and direction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import trainers_findable

NIFTI_ENDINGS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class PredictOptions:
    """Settings of :func:`predict_ct`.

    Attributes:
        threshold: tumour where probability >= threshold, in (0, 1); -1 writes the probability map
            (float32) instead, with no filtering or smoothing.
        lung_filter: drop tumour components (3D, 26-connected) that do not touch the lung mask.
        radius: smoothing radius in voxels (0: none): binary closing then opening with a ball.
        cpu: run on the CPU even when a GPU is available.
        crop_lungs: predict one crop per lung and paste the crops back (as the paper's student).
        lungmask_weights: R231 state dict for lung masks (lung filter, cropping); see ``lung_crop``.
        folds: model folds to average (None: every fold with the checkpoint).
        checkpoint: checkpoint file name in each fold folder.
        mirroring: test-time mirroring (if the trainer allows it).
        step_size: sliding-window step as a fraction of the patch.
    """

    threshold: float = 0.5
    lung_filter: bool = False
    radius: int = 0
    cpu: bool = False
    crop_lungs: bool = False
    lungmask_weights: str | None = None
    crop_margin_mm: float = 10.0
    folds: tuple[str, ...] | None = None
    checkpoint: str = "checkpoint_final.pth"
    mirroring: bool = True
    step_size: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold != -1 and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1) or -1 (probabilities), got {self.threshold}")
        if self.radius < 0:
            raise ValueError(f"radius must be >= 0, got {self.radius}")
        if self.threshold == -1 and (self.lung_filter or self.radius):
            raise ValueError("--lung-filter and --radius act on a mask; they cannot be combined with "
                             "--threshold -1 (probabilities)")


def read_ct_input(path: str | Path, series_uid: str | None = None):
    """A CT as a SimpleITK image: an image file (NIfTI, NRRD, MHA) or a DICOM folder.

    A DICOM folder must hold exactly one plain CT series, or ``series_uid`` must choose one.

    Raises:
        InputError: missing path, unreadable file, or a DICOM folder with no / several CT series.
    """
    import SimpleITK as sitk

    from nnunet_ts.io.dicom import ct_exclusion_reason, discover_series, read_ct
    from nnunet_ts.io.images import read_image

    path = Path(path)
    if path.is_dir():
        series = discover_series(path)
        cts = [s for s in series if ct_exclusion_reason(s) is None]
        if series_uid is not None:
            cts = [s for s in cts if s.series_uid == series_uid]
        if not cts:
            found = ", ".join(sorted({s.modality for s in series}))
            chosen = f" with series UID {series_uid}" if series_uid else ""
            raise InputError(f"DICOM folder {path} holds no CT series{chosen} (found: {found}); point to "
                             f"the CT's folder or fix --series-uid")
        if len(cts) > 1:
            listing = "; ".join(f"{s.series_uid} ({len(s.files)} slices, '{s.description}')" for s in cts)
            raise InputError(f"DICOM folder {path} holds {len(cts)} CT series: {listing}; pass --series-uid "
                             f"to choose one")
        return read_ct(cts[0])
    if not path.name.lower().endswith(NIFTI_ENDINGS):
        raise InputError(f"input {path} is neither a DICOM folder nor an image file ({', '.join(NIFTI_ENDINGS)})")
    read_image(path, "CT")  # checks existence, 3D, finite values with one clear message
    return sitk.ReadImage(str(path))


def load_predictor(model_folder: str | Path, options: PredictOptions):
    """An initialised ``nnUNetPredictor`` for a trained model folder (CT-only input, 2 classes).

    Raises:
        InputError: not a model folder, no fold with the checkpoint, or a model that needs more
            than the CT (a teacher: CT + segbox) or predicts more than tumour vs background.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    model_folder = Path(model_folder)
    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(f"model folder {model_folder} has no {name}; pass the folder nnUNetv2_train "
                             f"wrote (nnUNet_results/DatasetXXX/<Trainer>__<Plans>__<config>)")
    folds = options.folds or tuple(p.name[len("fold_"):] for p in sorted(model_folder.glob("fold_*"))
                                   if (p / options.checkpoint).is_file())
    missing = [f for f in folds if not (model_folder / f"fold_{f}" / options.checkpoint).is_file()]
    if not folds or missing:
        raise InputError(f"model folder {model_folder}: no {options.checkpoint} in fold(s) "
                         f"{', '.join(missing) or 'fold_*'}; finish training or pass --checkpoint/--folds")
    import json

    dataset = json.loads((model_folder / "dataset.json").read_text())
    channels = dataset.get("channel_names", dataset.get("modality", {}))
    if len(channels) != 1:
        raise InputError(f"model in {model_folder} takes {len(channels)} input channels "
                         f"({', '.join(channels.values())}); nnunet_ts predict runs CT-only models (the "
                         f"student or baseline), not the box-guided teacher")
    if len(dataset.get("labels", {})) != 2:
        raise InputError(f"model in {model_folder} predicts labels {dataset.get('labels')}; expected "
                         f"background and tumour")
    use_cuda = not options.cpu and torch.cuda.is_available()
    predictor = nnUNetPredictor(tile_step_size=options.step_size, use_gaussian=True,
                                use_mirroring=options.mirroring, perform_everything_on_device=use_cuda,
                                device=torch.device("cuda" if use_cuda else "cpu"), allow_tqdm=False)
    with trainers_findable():
        predictor.initialize_from_trained_model_folder(str(model_folder), tuple(
            f if f == "all" else int(f) for f in folds), options.checkpoint)
    return predictor


def tumour_probability(predictor, hu: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Tumour probability (float32, z, y, x) of a CT array in HU with nnU-Net's predictor."""
    _, probabilities = predictor.predict_single_npy_array(
        np.asarray(hu, dtype=np.float32)[None], {"spacing": [float(s) for s in spacing_zyx]}, None, None, True)
    return np.asarray(probabilities[1], dtype=np.float32)


def lung_filter(mask: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Keep the tumour components (26-connected) that touch the lungs."""
    import cc3d

    labels = cc3d.connected_components(mask > 0, connectivity=26)
    touching = np.unique(labels[(lungs > 0) & (labels > 0)])
    return np.isin(labels, touching[touching > 0]).astype(np.uint8)


def smooth(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing then opening with a ball of ``radius`` voxels (fills dents, cuts spurs)."""
    from scipy import ndimage

    if radius <= 0:
        return mask
    r = np.arange(-radius, radius + 1)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius ** 2
    padded = np.pad(mask > 0, radius + 1)
    closed = ndimage.binary_closing(padded, structure=ball)
    opened = ndimage.binary_opening(closed, structure=ball)
    return opened[(slice(radius + 1, -(radius + 1)),) * 3].astype(np.uint8)


def predict_ct(image, predictor, options: PredictOptions, progress=None) -> tuple[np.ndarray, dict]:
    """Segment the tumours of a CT (SimpleITK image in HU).

    Args:
        progress: called with a short step name before each step (e.g. to update a progress bar).

    Returns:
        (array (z, y, x) on the input grid: uint8 mask, or float32 probabilities with threshold -1,
        info dict: lung-mask method and warning, crops).
    """
    import SimpleITK as sitk

    from nnunet_ts.datasets.lung_crop import compute_lung_mask, crop_array, paste_back, plan_crops
    from nnunet_ts.io.images import geometry_of

    step = progress or (lambda name: None)
    geometry = geometry_of(image)
    hu = sitk.GetArrayFromImage(image)
    info: dict = {}
    lungs = None
    if options.crop_lungs or options.lung_filter:
        step("lung mask")
        lungs = compute_lung_mask(image, options.lungmask_weights, force_cpu=options.cpu)
        info.update(lung_mask=lungs.method, lung_mask_warning=lungs.warning)
    if options.crop_lungs:
        plan = plan_crops(lungs, geometry, options.crop_margin_mm)
        info["crops"] = [c.side for c in plan.crops]
        parts = []
        for crop in plan.crops:
            step(f"tumour probability ({crop.side} lung)")
            parts.append(tumour_probability(predictor, crop_array(hu, crop), geometry.spacing_zyx))
        probability = paste_back(parts, plan)
    else:
        step("tumour probability")
        probability = tumour_probability(predictor, hu, geometry.spacing_zyx)
    if options.threshold == -1:
        return probability, info
    mask = (probability >= options.threshold).astype(np.uint8)
    if options.lung_filter:
        step("lung filter")
        mask = lung_filter(mask, lungs.labels)
    if options.radius:
        step("smoothing")
        mask = smooth(mask, options.radius)
    return mask, info


def write_like(array: np.ndarray, reference, path: str | Path) -> None:
    """Write ``array`` (z, y, x) with the size, spacing, origin and direction of ``reference``."""
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(array)
    out.CopyInformation(reference)
    sitk.WriteImage(out, str(path), useCompression=True)
