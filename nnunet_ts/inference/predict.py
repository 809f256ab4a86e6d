"""End-user prediction: a CT (NIfTI file or DICOM folder) in, a tumour mask in its exact geometry out.

The options follow the paper's released tool (LungTumorMask): a probability threshold (or the
probabilities themselves), a lung filter, a per-slice closing, a CPU switch, plus optional lung
cropping as in the student's training and, for a box-guided teacher, the reader's boxes. The
network runs through nnU-Net's own ``nnUNetPredictor`` (sliding window, Gaussian weighting,
test-time mirroring when the trainer allows it, folds averaged), so a model predicts here exactly
as with ``nnUNetv2_predict``.

Steps: read CT -> [lung mask -> one crop per lung] -> tumour probability per crop (nnU-Net
resamples to the model's spacing and back) -> paste crops back -> [teacher: 0 outside the boxes
grown by a margin] -> [lung filter] -> threshold -> [lung components] -> [closing] -> [smoothing]
-> outputs with the input's size, spacing, origin and direction.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import trainers_findable

NIFTI_ENDINGS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class PredictOptions:
    """Settings of :func:`predict_ct` (the post-processing is ``inference.postprocess``).

    Attributes:
        threshold: tumour where probability > threshold, in [0, 1]; -1 returns the probability map
            (float32) instead (lung filter applies, the mask operations do not).
        lung_filter: voxel-wise: everything outside the lung mask set to 0 (LungTumorMask's meaning).
        lung_components: keep only tumour components (3D, 26-connected) touching the lungs, whole.
        radius: per axial slice, 2D closing with a disk of this radius (voxels; 0: none).
        smooth: 3D closing then opening with a ball of this radius (voxels; 0: none).
        device: "cpu", "cuda" or None (cuda when available).
        crop_lungs: predict one crop per lung and paste the crops back (as the paper's student).
        lungmask_weights: R231 state dict for lung masks (lung filter, cropping); see ``lung_crop``.
        crop_margin_mm: margin of each lung crop (mm).
        folds: model folds to average (None: every fold with the checkpoint).
        checkpoint: checkpoint file name in each fold folder.
        mirroring: test-time mirroring (if the trainer allows it).
        step_size: sliding-window step as a fraction of the patch.
        box_margin_mm: a box-guided teacher's probability is 0 farther than this from its boxes (3D, mm).
        interpolate_boxes: fill the slices between a lesion's boxed slices (see ``box_prompt``).
    """

    threshold: float = 0.5
    lung_filter: bool = False
    lung_components: bool = False
    radius: int = 0
    smooth: int = 0
    device: str | None = None
    crop_lungs: bool = False
    lungmask_weights: str | None = None
    crop_margin_mm: float = 10.0
    folds: tuple[str, ...] | None = None
    checkpoint: str = "checkpoint_final.pth"
    mirroring: bool = True
    step_size: float = 0.5
    box_margin_mm: float = 5.0
    interpolate_boxes: bool = False

    def __post_init__(self) -> None:
        if self.threshold != -1 and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1] or -1 (probabilities), got {self.threshold}")
        if self.radius < 0 or self.smooth < 0:
            raise ValueError(f"radius and smooth must be >= 0, got {self.radius}, {self.smooth}")
        if self.threshold == -1 and (self.lung_components or self.radius or self.smooth):
            raise ValueError("--lung-components, --radius and --smooth act on a mask; they cannot be combined "
                             "with --threshold -1 (probabilities)")

    @property
    def needs_lungs(self) -> bool:
        return self.crop_lungs or self.lung_filter or self.lung_components

    def settings(self) -> dict:
        """The options that change the result (for the resume check), JSON-ready."""
        from dataclasses import asdict

        doc = asdict(self)
        doc.pop("device")
        return json.loads(json.dumps(doc))


def read_ct_input(path: str | Path, series_uid: str | None = None):
    """A CT as a SimpleITK image: an image file (NIfTI, NRRD, MHA) or a DICOM folder.

    A DICOM folder must hold exactly one plain CT series, or ``series_uid`` must choose one.

    Raises:
        InputError: missing path, unreadable file, or a DICOM folder with no / several CT series.
    """
    from nnunet_ts.io.dicom import choose_ct_series, read_ct
    from nnunet_ts.io.images import read_sitk

    path = Path(path)
    if path.is_dir():
        return read_ct(choose_ct_series(path, series_uid))
    if not path.name.lower().endswith(NIFTI_ENDINGS):
        raise InputError(f"input {path} is neither a DICOM folder nor an image file ({', '.join(NIFTI_ENDINGS)})")
    return read_sitk(path, "CT", finite=True)  # missing, truncated, not 3D, NaN: one clear message


def load_predictor(model_folder: str | Path, options: PredictOptions, teacher: bool = False):
    """An initialised ``nnUNetPredictor`` for a trained model folder (2 classes).

    Args:
        teacher: the model reads CT + segbox (a box-guided teacher); else CT only.

    Raises:
        InputError: not a model folder, no fold with the checkpoint, input channels other than CT
            (+ segbox with ``teacher``), or labels other than background and tumour.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_ts.inference.model_package import check_model_folder, trained_folds
    from nnunet_ts.nnunet.inference_resampling import use_threaded_resampling

    model_folder = check_model_folder(model_folder)
    folds = options.folds or trained_folds(model_folder, options.checkpoint)
    missing = [f for f in folds if not (model_folder / f"fold_{f}" / options.checkpoint).is_file()]
    if not folds or missing:
        raise InputError(f"model folder {model_folder}: no {options.checkpoint} in fold(s) "
                         f"{', '.join(missing) or 'fold_*'}; finish training or pass -chk/--checkpoint, -f/--folds")
    dataset = json.loads((model_folder / "dataset.json").read_text())
    channels = dataset.get("channel_names", dataset.get("modality", {}))
    names = [str(channels[k]) for k in sorted(channels, key=int)]
    if teacher and (len(names) != 2 or names[1] != "noNorm"):
        raise InputError(f"model {model_folder} reads channels {names}, not CT + segbox: --boxes needs a "
                         f"box-guided teacher (e.g. BoxTeacherTrainer); drop --boxes for a CT-only model")
    if not teacher and len(names) != 1:
        raise InputError(f"model {model_folder} reads {len(names)} channels {names}: a box-guided teacher "
                         f"needs the reader's boxes; pass --boxes FILE (see `nnunet_ts predict --help`)")
    if len(dataset.get("labels", {})) != 2:
        raise InputError(f"model in {model_folder} predicts labels {dataset.get('labels')}; expected "
                         f"background and tumour")
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("-device cuda: no CUDA GPU is visible to torch; use -device cpu")
    predictor = nnUNetPredictor(tile_step_size=options.step_size, use_gaussian=True,
                                use_mirroring=options.mirroring, perform_everything_on_device=device == "cuda",
                                device=torch.device(device), allow_tqdm=False)
    with trainers_findable():
        predictor.initialize_from_trained_model_folder(str(model_folder), tuple(
            f if f == "all" else int(f) for f in folds), options.checkpoint)
    use_threaded_resampling(predictor)  # nnU-Net's resampling, the channels in threads
    return predictor


def tumour_probability(predictor, channels: Sequence[np.ndarray], spacing_zyx: Sequence[float]) -> np.ndarray:
    """Tumour probability (float32, z, y, x) with nnU-Net's predictor.

    Args:
        channels: the model's input arrays (z, y, x): the CT in HU, then the segbox for a teacher.
    """
    image = np.stack([np.asarray(c, dtype=np.float32) for c in channels])
    _, probabilities = predictor.predict_single_npy_array(
        image, {"spacing": [float(s) for s in spacing_zyx]}, None, None, True)
    return np.asarray(probabilities[1], dtype=np.float32)


@dataclass
class Prediction:
    """What :func:`predict_ct` gives: ``output`` (uint8 mask, or float32 probabilities with threshold -1),
    ``probability`` (after box restriction and lung filter), ``lungs`` (LungMask or None), ``info``."""

    output: np.ndarray
    probability: np.ndarray
    lungs: object = None
    info: dict | None = None

    @property
    def is_mask(self) -> bool:
        return self.output.dtype == np.uint8


def predict_ct(image, predictor, options: PredictOptions, segbox: np.ndarray | None = None,
               progress=None) -> Prediction:
    """Segment the tumours of a CT (SimpleITK image in HU).

    Args:
        segbox: a box-guided teacher's segbox (uint8 (z, y, x), the CT's grid); the probability
            farther than ``options.box_margin_mm`` from it is set to 0 (``boxes.restriction``).
        progress: called with a short step name before each step (e.g. to update a progress bar).
    """
    import SimpleITK as sitk

    from nnunet_ts.boxes.restriction import box_region, restrict_probabilities
    from nnunet_ts.datasets.lung_crop import compute_lung_mask, crop_array, paste_back, plan_crops
    from nnunet_ts.inference import postprocess
    from nnunet_ts.io.images import geometry_of

    step = progress or (lambda name: None)
    geometry = geometry_of(image)
    hu = sitk.GetArrayFromImage(image)
    channels = [hu] if segbox is None else [hu, segbox]
    info: dict = {}
    lungs = None
    if options.needs_lungs:
        step("lung mask")
        lungs = compute_lung_mask(image, options.lungmask_weights, force_cpu=options.device != "cuda")
        info.update(lung_mask=lungs.method, lung_mask_warning=lungs.warning)
    if options.crop_lungs:
        plan = plan_crops(lungs, geometry, options.crop_margin_mm)
        info["crops"] = [c.side for c in plan.crops]
        parts = []
        for crop in plan.crops:
            step(f"tumour probability ({crop.side} lung)")
            parts.append(tumour_probability(predictor, [crop_array(c, crop) for c in channels],
                                            geometry.spacing_zyx))
        probability = paste_back(parts, plan)
    else:
        step("tumour probability")
        probability = tumour_probability(predictor, channels, geometry.spacing_zyx)
    if segbox is not None:
        probability = restrict_probabilities(probability, box_region(segbox, geometry.spacing_zyx,
                                                                     options.box_margin_mm))
    if options.lung_filter:
        probability = postprocess.lung_filter(probability, lungs.labels)
    if options.threshold == -1:
        return Prediction(probability, probability, lungs, info)
    mask = postprocess.threshold_mask(probability, options.threshold)
    if options.lung_components:
        step("lung components")
        mask = postprocess.keep_lung_components(mask, lungs.labels)
    if options.radius:
        step("closing")
        mask = postprocess.close_slices(mask, options.radius)
    if options.smooth:
        step("smoothing")
        mask = postprocess.smooth(mask, options.smooth)
    return Prediction(mask, probability, lungs, info)


def write_like(array: np.ndarray, reference, path: str | Path) -> None:
    """Write ``array`` (z, y, x) with the geometry of ``reference``, atomically (a temporary file renamed)."""
    import os
    import tempfile

    import SimpleITK as sitk

    path = Path(path)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(reference)
    # SimpleITK picks the writer from the name, so the temporary file keeps the ending
    ending = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=ending)
    os.close(fd)
    try:
        sitk.WriteImage(out, tmp, useCompression=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
