"""A trained teacher, checked and loaded through nnU-Net's predictor, predicting foreground probability.

The teacher is an nnU-Net model folder (``nnUNet_results/DatasetXXX/<Trainer>__<Plans>__<config>``)
trained on CT (channel 0) + segbox (channel 1, named ``noNorm``). Folds are combined by soft voting:
each fold's softmax probabilities, averaged (Baldeon Calisto's teacher ensemble); nnU-Net's own
multi-fold prediction averages logits instead.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import trainers_findable
from nnunet_ts.pseudolabel.roi import TilePlan, aligned_crop, box_regions, context_crop, tile_plan, within


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher and how to run it.

    Attributes:
        model_folder: the trained model folder (holds plans.json, dataset.json, fold_X/).
        folds: folds to average ("all" or integers as strings).
        checkpoint: checkpoint file name in each fold folder.
        mirroring: test-time mirroring (nnU-Net's default; 8 passes per patch in 3D).
        tile_step_size: sliding-window step as a fraction of the patch (nnU-Net's 0.5).
        device: "cpu" or "cuda".
    """

    model_folder: Path
    folds: tuple[str, ...] = ("0",)
    checkpoint: str = "checkpoint_final.pth"
    mirroring: bool = False
    tile_step_size: float = 0.5
    device: str = "cpu"

    def checkpoint_paths(self) -> dict[str, Path]:
        return {f: Path(self.model_folder) / f"fold_{f}" / self.checkpoint for f in self.folds}


def check_teacher(spec: TeacherSpec) -> dict:
    """Check a teacher folder before anything is written; returns its provenance record.

    Raises:
        InputError: the folder, its plans/dataset.json or a fold's checkpoint is missing; the
            teacher does not read exactly CT + segbox.
    """
    folder = Path(spec.model_folder)
    for name in ("plans.json", "dataset.json"):
        if not (folder / name).is_file():
            raise InputError(f"teacher folder {folder} has no {name}; pass the trained model folder "
                             f"(nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>)")
    missing = [str(p) for p in spec.checkpoint_paths().values() if not p.is_file()]
    if missing:
        have = sorted(p.parent.name for p in folder.glob(f"fold_*/{spec.checkpoint}"))
        raise InputError(f"teacher checkpoint {missing[0]} missing ({len(missing)} of {len(spec.folds)} "
                         f"folds); trained folds with {spec.checkpoint}: {', '.join(have) or 'none'}; "
                         f"pass --folds accordingly or finish training")
    dataset_json = json.loads((folder / "dataset.json").read_text())
    channels = dataset_json.get("channel_names", dataset_json.get("modality", {}))
    names = [channels[k] for k in sorted(channels, key=int)]
    if len(names) != 2 or names[1] != "noNorm":
        raise InputError(f"teacher {folder} reads {len(names)} channel(s) {names}; pseudo-labelling "
                         f"needs a box-guided teacher trained on CT + segbox (channels CT, noNorm), "
                         f"e.g. BoxTeacherTrainer on a `nnunet_ts dataset teacher` dataset")
    return {"teacher_folder": str(folder.resolve()), "folds": list(spec.folds),
            "checkpoint": spec.checkpoint,
            "checkpoint_sha256": {f: sha256(p) for f, p in spec.checkpoint_paths().items()},
            "mirroring": spec.mirroring, "tile_step_size": spec.tile_step_size,
            "nnunetv2_version": _version()}


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, computed once per process for the same file state
    (``datasets.resume.file_signature``: the checks, the settings and the merge each ask)."""
    from nnunet_ts.datasets.resume import file_signature

    return file_signature(path)[2]


def _version() -> str:
    from importlib.metadata import version

    return version("nnunetv2")


@dataclass
class Teacher:
    """A loaded teacher; ``predict`` gives the soft-voted foreground probability of one case."""

    spec: TeacherSpec
    _predictor: object = field(default=None, repr=False)
    _fold_parameters: list = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, spec: TeacherSpec) -> Teacher:
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        from nnunet_ts.nnunet.inference_resampling import use_threaded_resampling

        check_teacher(spec)
        predictor = nnUNetPredictor(tile_step_size=spec.tile_step_size, use_gaussian=True,
                                    use_mirroring=spec.mirroring,
                                    perform_everything_on_device=spec.device == "cuda",
                                    device=torch.device(spec.device), allow_tqdm=False)
        folds = [f if f == "all" else int(f) for f in spec.folds]
        with trainers_findable():
            predictor.initialize_from_trained_model_folder(str(spec.model_folder), folds, spec.checkpoint)
        use_threaded_resampling(predictor)  # nnU-Net's resampling, the channels in threads
        return cls(spec, predictor, list(predictor.list_of_parameters))

    def predict(self, ct: np.ndarray, segbox: np.ndarray, spacing_zyx: Sequence[float],
                mode: str = "roi", margin_mm: float = 20.0) -> np.ndarray:
        """Foreground probability (float32, (z, y, x), the input grid) of one case.

        ``mode="full"``: the whole volume, as ``nnUNetv2_predict`` computes it.
        ``mode="roi"``: each region (a box grown by ``margin_mm``, :func:`box_regions`) is predicted from
        a crop around it through the same nnU-Net pipeline (preprocessing, sliding window, export), so
        only the crops are resampled and only their tiles run; the map holds the regions and is 0
        elsewhere. For a 3D teacher the crop holds exactly the whole volume's tiles that reach the
        region, resampled on the whole volume's grid, and only those tiles run (:func:`tile_plan`): the
        region gets the whole-volume prediction's values up to resampling at the crop's edges
        (measured per region in ``scripts/benchmarks/pseudolabel.py``). Otherwise (2D, transposed axes,
        a volume smaller than a patch) the crop is the region with half a patch of context
        (:func:`context_crop`) on the whole volume's grid (:func:`aligned_crop`), tiled on its own.
        """
        if mode == "full":
            return self._predict_array(ct, segbox, spacing_zyx)
        probability = np.zeros(ct.shape, np.float32)
        context = self.context_mm(spacing_zyx)
        target = self.target_spacing_zyx(spacing_zyx)
        p = self._predictor
        patch = [int(n) for n in p.configuration_manager.patch_size]
        tiled = len(patch) == 3 and list(p.plans_manager.transpose_forward) == [0, 1, 2]
        for region in box_regions(segbox, spacing_zyx, margin_mm):
            plan = tile_plan(region, ct.shape, spacing_zyx, target, patch, p.tile_step_size) if tiled else None
            crop = plan.crop if plan is not None else aligned_crop(
                context_crop(region, ct.shape, spacing_zyx, context), ct.shape, spacing_zyx, target)
            probability[region] = self._predict_array(ct[crop], segbox[crop], spacing_zyx, plan)[within(region, crop)]
        return probability

    def context_mm(self, spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
        """Half the network's patch in mm along (z, y, x) of the input; 0 across the slices of a 2D teacher."""
        p = self._predictor
        patch = [int(n) for n in p.configuration_manager.patch_size]
        spacing = [float(s) for s in p.configuration_manager.spacing]
        if len(patch) == 2:  # a 2D teacher: slices along the first (transposed) axis, no context across them
            patch, spacing = [0, *patch], [float(spacing_zyx[p.plans_manager.transpose_forward[0]]), *spacing]
        half = [0.0, 0.0, 0.0]
        for axis_in_plans, axis in enumerate(p.plans_manager.transpose_forward):
            half[axis] = 0.5 * patch[axis_in_plans] * spacing[axis_in_plans]
        return tuple(half)

    def target_spacing_zyx(self, spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
        """The spacing the network runs at, along (z, y, x) of the input; a 2D teacher keeps the input's
        spacing across its slices."""
        p = self._predictor
        spacing = [float(s) for s in p.configuration_manager.spacing]
        if len(spacing) == 2:
            spacing = [float(spacing_zyx[p.plans_manager.transpose_forward[0]]), *spacing]
        target = [0.0, 0.0, 0.0]
        for axis_in_plans, axis in enumerate(p.plans_manager.transpose_forward):
            target[axis] = spacing[axis_in_plans]
        return tuple(target)

    def _predict_array(self, ct: np.ndarray, segbox: np.ndarray, spacing_zyx, plan: TilePlan | None = None
                       ) -> np.ndarray:
        """nnU-Net's single-case prediction, preprocessed once and soft-voted over the folds; with ``plan``
        only its tiles run (where nnU-Net's preprocessing gave the planned shape), and the resampled
        samples no tile reaches (outside what the plan's region needs) are given logits 0."""
        import torch
        from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        from nnunet_ts.nnunet.predictor_tiles import planned_tiles

        p = self._predictor
        image = np.stack([ct, segbox]).astype(np.float32, copy=False)
        preprocessed = next(PreprocessAdapterFromNpy(
            [image], [None], [{"spacing": [float(s) for s in spacing_zyx]}], [None], p.plans_manager,
            p.dataset_json, p.configuration_manager, num_threads_in_multithreaded=1, verbose=False))
        del image
        slicers = None
        if plan is not None and tuple(preprocessed["data"].shape[1:]) == plan.shape:
            slicers = plan.slicers(p.configuration_manager.patch_size)
        total = None
        for parameters in self._fold_parameters:
            p.list_of_parameters = [parameters]
            with planned_tiles(p, slicers):
                logits = p.predict_logits_from_preprocessed_data(preprocessed["data"]).cpu()
            if slicers is not None:  # 0 / 0 where no tile ran
                logits = torch.nan_to_num(logits, nan=0.0)
            _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, p.plans_manager, p.configuration_manager, p.label_manager,
                preprocessed["data_properties"], return_probabilities=True)
            del logits
            if total is None:
                total = np.array(probabilities[1], dtype=np.float32)
            else:
                total += probabilities[1]
            del probabilities
        total /= len(self._fold_parameters)
        return total
