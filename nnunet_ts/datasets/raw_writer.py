"""Write nnU-Net raw datasets from a case manifest, in the three forms the method needs.

=========  =====================================  ===========================  =================
kind       channels                               labels                       cases
=========  =====================================  ===========================  =================
teacher    ``_0000`` CT, ``_0001`` segbox (noNorm)  tumour mask                  strong (+ test)
student    ``_0000`` CT                             tumour mask                  strong (+ test)
weak       ``_0000`` CT, ``_0001`` segbox (noNorm)  none (input of pseudolabel)  weak
=========  =====================================  ===========================  =================

Teacher segboxes come from the masks (every strong mask is turned into its weak form,
``docs/method.md`` "Pipeline", step 1); weak segboxes come from the drawn rectangles (``boxes``
column). Training cases go to ``imagesTr``/``labelsTr``, ``test`` cases to ``imagesTs``/``labelsTs``,
and the weak set's cases to ``imagesTs`` (they are inputs to ``nnUNetv2_predict``, not training
cases).

Besides nnU-Net's ``dataset.json`` the folder holds ``splits_final.json`` (grouped by patient,
balanced by tumour volume) and ``nnunet_ts.json`` (kind, segbox form, patient and subset of every
case), which later steps (pseudo-labels, evaluation) read.

The dataset is built in a hidden sibling folder and renamed into place only when every case has
been checked and written, so a failure never leaves a half-written ``DatasetXXX``; a rerun resumes
from the cases already finished (``nnunet_ts.datasets.resume``).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nnunet_ts import __version__
from nnunet_ts.boxes.segbox import SEGBOX_MODES, segbox_from_mask, segbox_from_rectangles
from nnunet_ts.errors import InputError
from nnunet_ts.io.boxes_file import load_rectangles
from nnunet_ts.io.images import check_same_geometry, read_image, write_image
from nnunet_ts.io.manifest import CaseRecord
from nnunet_ts.nnunet.paths import dataset_folder_name, folders_with_id

DatasetKind = Literal["teacher", "student", "weak"]
DATASET_KINDS: tuple[str, ...] = ("teacher", "student", "weak")
FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, "tumour": 1}
METADATA_FILE = "nnunet_ts.json"


@dataclass(frozen=True)
class DatasetSpec:
    """What to write.

    Attributes:
        kind: ``teacher``, ``student`` or ``weak`` (see module docstring).
        dataset_id: nnU-Net dataset id, 1-999.
        name: dataset name; the folder is ``DatasetXXX_<name>``.
        segbox_mode: ``per_lesion`` (default, tighter), ``per_slice`` (paper) or ``box3d``.
        num_folds: cross-validation folds in ``splits_final.json``.
        seed: breaks ties when assigning patients to folds.
        allow_empty_boxes: accept weak cases without any rectangle (they then teach "no tumour").
    """

    kind: DatasetKind
    dataset_id: int
    name: str
    segbox_mode: str = "per_lesion"
    num_folds: int = 5
    seed: int = 0
    allow_empty_boxes: bool = False

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.segbox_mode not in SEGBOX_MODES:
            raise ValueError(f"segbox_mode must be one of {SEGBOX_MODES}, got {self.segbox_mode!r}")
        if self.num_folds < 2:
            raise ValueError(f"num_folds must be >= 2, got {self.num_folds}")

    @property
    def folder_name(self) -> str:
        return dataset_folder_name(self.dataset_id, self.name)

    @property
    def has_segbox(self) -> bool:
        return self.kind in ("teacher", "weak")

    @property
    def channel_names(self) -> dict[str, str]:
        # "noNorm" keeps nnU-Net's z-scoring away from the binary box channel.
        return {"0": "CT", "1": "noNorm"} if self.has_segbox else {"0": "CT"}


@dataclass(frozen=True)
class _CaseJob:
    record: CaseRecord
    spec: DatasetSpec
    images_dir: Path
    labels_dir: Path | None  # None: write no label (weak cases)


def _read_mask(record: CaseRecord, ct_geometry, kind: str) -> np.ndarray:
    if record.mask is None:
        raise InputError(f"case {record.case_id}: the manifest gives no mask, but a {kind} dataset "
                         f"needs one for subset '{record.subset}'; add the mask path or move the "
                         f"case to the weak subset")
    mask, geometry = read_image(record.mask, "mask")
    check_same_geometry(ct_geometry, record.ct, geometry, record.mask)
    if np.issubdtype(mask.dtype, np.floating) and not np.array_equal(mask, np.round(mask)):
        raise InputError(f"mask {record.mask} holds non-integer values; a mask must be a label image "
                         f"(0 = background, > 0 = tumour), not a probability map")
    if (mask < 0).any():
        raise InputError(f"mask {record.mask} holds negative values; use 0 for background")
    return (mask > 0).astype(np.uint8)


def _segbox_from_boxes(record: CaseRecord, shape: tuple[int, ...], spec: DatasetSpec) -> np.ndarray:
    if record.boxes is None:
        raise InputError(f"case {record.case_id}: the manifest gives no boxes file, but a weak "
                         f"dataset needs the drawn boxes; add the 'boxes' path")
    rects, box_shape = load_rectangles(record.boxes)
    if tuple(box_shape) != tuple(shape):
        raise InputError(f"boxes file {record.boxes} was drawn on an image of shape {box_shape} "
                         f"but the CT {record.ct} has shape {tuple(shape)}; they must belong to the same scan")
    if not rects and not spec.allow_empty_boxes:
        raise InputError(f"boxes file {record.boxes} holds no rectangle (empty box); drop case "
                         f"{record.case_id} from the weak subset or pass --allow-empty-boxes")
    return segbox_from_rectangles(rects, shape, spec.segbox_mode)


def write_case(job: _CaseJob) -> tuple[str, float]:
    """Check and write one case; returns (case_id, tumour volume in mm^3, 0 without a mask)."""
    record, spec = job.record, job.spec
    ct, geometry = read_image(record.ct, "CT")
    mask = _read_mask(record, geometry, spec.kind) if job.labels_dir is not None else None
    channels = [ct]
    if spec.has_segbox:
        segbox = (segbox_from_mask(mask, spec.segbox_mode) if mask is not None
                  else _segbox_from_boxes(record, ct.shape, spec))
        channels.append(segbox)
    for index, channel in enumerate(channels):
        write_image(job.images_dir / f"{record.case_id}_{index:04d}{FILE_ENDING}", channel, geometry)
    volume = 0.0
    if mask is not None:
        write_image(job.labels_dir / f"{record.case_id}{FILE_ENDING}", mask, geometry)
        volume = float(mask.sum()) * geometry.voxel_volume_mm3
    return record.case_id, volume


def _run_jobs(jobs: Sequence[_CaseJob], workers: int) -> Iterator[tuple[str, float]]:
    if workers <= 1:
        yield from map(write_case, jobs)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(write_case, jobs)


def _select(records: Sequence[CaseRecord], spec: DatasetSpec) -> tuple[list[CaseRecord], list[CaseRecord]]:
    """(training cases, test cases) for the dataset kind."""
    if spec.kind == "weak":
        return [], [r for r in records if r.subset == "weak"]
    return ([r for r in records if r.subset == "strong"], [r for r in records if r.subset == "test"])


def write_dataset(records: Sequence[CaseRecord], spec: DatasetSpec, raw_root: str | Path, *,
                  overwrite: bool = False, workers: int = 1,
                  progress: Callable[[int], object] | None = None) -> Path:
    """Write ``raw_root/DatasetXXX_Name`` for ``spec`` from manifest ``records``.

    The dataset is built in ``raw_root/.DatasetXXX_Name.partial`` (see ``nnunet_ts.datasets.resume``): after
    an error or an interruption, fix the cause and run again with the same settings; cases finished
    before, whose input files did not change, are not converted again.

    Args:
        records: cases from ``cases.read_manifest``.
        spec: kind, id, name and options.
        raw_root: the ``nnUNet_raw`` folder.
        overwrite: replace an existing dataset with the same id (only after the new one is complete).
        workers: processes used to convert cases.
        progress: called with the number of cases done so far (e.g. a tqdm bar's update).

    Returns:
        The dataset folder.

    Raises:
        InputError: bad input (missing/corrupt files, geometry mismatch, empty boxes, no cases, an
            existing dataset with this id without ``overwrite``). No ``DatasetXXX`` is written then.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    from nnunet_ts.datasets.resume import WorkFolder
    from nnunet_ts.datasets.splits import grouped_splits

    raw_root = Path(raw_root)
    target = raw_root / spec.folder_name
    existing = folders_with_id(raw_root, spec.dataset_id)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists (dataset id {spec.dataset_id}); choose another "
                         f"id or pass --overwrite to replace it")
    train, test = _select(records, spec)
    wanted = "weak" if spec.kind == "weak" else "strong"
    if not train and not test or spec.kind != "weak" and not train:
        raise InputError(f"the manifest has no '{wanted}' cases, so a {spec.kind} dataset would be "
                         f"empty; check the 'subset' column")
    if train and len({r.patient_id for r in train}) < 2:
        raise InputError(f"all {len(train)} {wanted} cases belong to one patient; cross-validation "
                         f"needs at least 2 patients")

    raw_root.mkdir(parents=True, exist_ok=True)
    work = WorkFolder(target, {"spec": asdict(spec), "nnunet_ts_version": __version__})
    jobs = _make_jobs(work.path, spec, train, test)
    finished = {j.record.case_id for j in jobs if _is_finished(work, j)}
    _remove_other_outputs(work.path, [j for j in jobs if j.record.case_id in finished])
    if progress is not None and finished:
        progress(len(finished))
    todo = {j.record.case_id: j for j in jobs if j.record.case_id not in finished}
    try:
        for done, (case_id, volume) in enumerate(_run_jobs(list(todo.values()), workers),
                                                 start=len(finished) + 1):
            work.mark_done(case_id, {"inputs": _input_signature(todo[case_id].record), "volume": volume})
            if progress is not None:
                progress(done)
    except InputError as exc:
        kept = (f"; the {len(work.done)} case(s) already written are kept in {work.path} and reused "
                f"when you rerun") if work.done else ""
        raise InputError(f"{exc}{kept}") from None

    volumes = {j.record.case_id: work.done[j.record.case_id]["volume"] for j in jobs}
    generate_dataset_json(
        str(work.path), channel_names=spec.channel_names, labels=LABELS,
        num_training_cases=len(train), file_ending=FILE_ENDING, dataset_name=spec.folder_name,
        description=f"nnunet_ts {spec.kind} dataset ({spec.segbox_mode} segbox)"
        if spec.has_segbox else "nnunet_ts student/baseline dataset (CT only)",
        numTest=len(test), nnunet_ts_kind=spec.kind)
    _write_json(work.path / METADATA_FILE, _metadata(spec, train, test, volumes))
    if train:
        folds = min(spec.num_folds, len({r.patient_id for r in train}))
        splits = grouped_splits([r.case_id for r in train], [r.patient_id for r in train],
                                [volumes[r.case_id] for r in train], folds, spec.seed)
        _write_json(work.path / "splits_final.json", splits)
    work.finish()
    for old in existing:
        if old != target:
            shutil.rmtree(old)
    return target


def _outputs(job: _CaseJob) -> list[Path]:
    channels = 2 if job.spec.has_segbox else 1
    paths = [job.images_dir / f"{job.record.case_id}_{i:04d}{FILE_ENDING}" for i in range(channels)]
    if job.labels_dir is not None:
        paths.append(job.labels_dir / f"{job.record.case_id}{FILE_ENDING}")
    return paths


def _input_signature(record: CaseRecord) -> list:
    from nnunet_ts.datasets.resume import file_signature

    return [record.subset, file_signature(record.ct), file_signature(record.mask),
            file_signature(record.boxes)]


def _is_finished(work, job: _CaseJob) -> bool:
    """Finished by an earlier run, from the same input files, with all its outputs present."""
    entry = work.done.get(job.record.case_id)
    if entry is None:
        return False
    try:
        same_inputs = entry["inputs"] == json.loads(json.dumps(_input_signature(job.record)))
    except OSError:
        return False  # an input vanished: converting the case again reports it
    return same_inputs and all(p.is_file() for p in _outputs(job))


def _remove_other_outputs(root: Path, finished: list[_CaseJob]) -> None:
    """Delete files in the work folder's image/label folders that no finished case owns."""
    keep = {p for job in finished for p in _outputs(job)}
    for folder in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        if (root / folder).is_dir():
            for path in (root / folder).iterdir():
                if path not in keep:
                    path.unlink()


def _make_jobs(root: Path, spec: DatasetSpec, train: list[CaseRecord],
               test: list[CaseRecord]) -> list[_CaseJob]:
    jobs = []
    for records, images, labels in ((train, "imagesTr", "labelsTr"), (test, "imagesTs", "labelsTs")):
        if not records:
            continue
        (root / images).mkdir(parents=True, exist_ok=True)
        labels_dir = None if spec.kind == "weak" else root / labels
        if labels_dir is not None:
            labels_dir.mkdir(exist_ok=True)
        jobs.extend(_CaseJob(r, spec, root / images, labels_dir) for r in records)
    return jobs


def _metadata(spec: DatasetSpec, train: list[CaseRecord], test: list[CaseRecord],
              volumes: dict[str, float]) -> dict:
    return {
        "nnunet_ts_version": __version__,
        "kind": spec.kind,
        "segbox_mode": spec.segbox_mode if spec.has_segbox else None,
        "channels": spec.channel_names,
        "cases": {r.case_id: {"patient_id": r.patient_id, "subset": r.subset,
                              "split": "train" if r in train else "test",
                              "tumour_volume_mm3": volumes.get(r.case_id) if spec.kind != "weak" else None,
                              "source_ct": str(r.ct)} for r in (*train, *test)},
    }


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2))
