"""The pseudo-label step end to end: teacher on the weak set, soft targets into a student dataset.

Work happens in ``nnUNet_raw/.DatasetXXX_Name.pseudolabel/`` (nnU-Net ignores names starting with
'.'): ``settings.json`` (the teacher's checksums and every setting that changes a pseudo label) and
``cases/<case>/``: ``soft_target.nii.gz``, its hard mask ``mask.nii.gz`` (>= 0.5), ``quality.json``,
``inputs.json`` (the SHA-256 of the CT and segbox it was made from) and ``outputs.json`` (the SHA-256
of the two images as written, the mask's tumour volume). Each case is built in a temporary folder and
renamed into place, so a case is either complete or absent. A rerun skips finished cases whose CT and
segbox are unchanged (an edited box is pseudo-labelled again); ``--num-parts N --part-id i`` runs take
every N-th case and never write the same case, so shards can run at once on several machines sharing
the folder.

The merge (automatic with one part) writes the student dataset: strong cases copied in, pseudo cases
with soft target, hard mask and the weak case's real segbox. A case's soft target and mask are copied
without being decoded again when their SHA-256 are those of its ``outputs.json``, and checked like any
input otherwise. ``dataset.json`` records the provenance, and the quality report
(``pseudolabel_quality.csv`` / ``.json``) lies next to it. The dataset appears in ``nnUNet_raw`` only
when complete.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import dataset_folder_name, folders_with_id
from nnunet_ts.pseudolabel.quality import FLAGS, QualitySettings, pseudo_label_quality, summarize
from nnunet_ts.pseudolabel.teacher import TeacherSpec, check_teacher, sha256

FILE_ENDING = ".nii.gz"
SOFT_TARGET_FILE = "soft_target.nii.gz"
QUALITY_FILE = "quality.json"
INPUTS_FILE = "inputs.json"  # the CT and segbox contents a case's pseudo label was made from
MASK_FILE = "mask.nii.gz"  # the soft target >= 0.5, the student dataset's label of the case
OUTPUTS_FILE = "outputs.json"  # the SHA-256 of the soft target and mask as written, the mask's volume
MODES = ("roi", "full")


@dataclass(frozen=True)
class PseudoLabelJob:
    """One pseudo-label step.

    Attributes:
        teacher: the trained teacher and how to run it.
        weak_dataset: raw weak dataset folder (imagesTs or imagesTr: <case>_0000 CT, <case>_0001
            segbox).
        strong_dataset: raw dataset folder with the strong cases (imagesTr <case>_0000 CT,
            labelsTr masks), e.g. the student or the teacher dataset.
        dataset_id, name: the student dataset to write.
        raw_root: the nnUNet_raw folder.
        mode: "roi" (each box plus margin_mm) or "full" (whole volume).
        margin_mm: ROI margin around each box (mm).
        allow_empty_boxes: weak cases with an empty segbox get an all-0 soft target (no tumour)
            instead of stopping the step with an error.
        exclude_flags: quality flags (see quality.FLAGS) whose cases are left out at the merge.
        quality: thresholds of the quality flags.
    """

    teacher: TeacherSpec
    weak_dataset: Path
    strong_dataset: Path
    dataset_id: int
    name: str
    raw_root: Path
    mode: str = "roi"
    margin_mm: float = 20.0
    allow_empty_boxes: bool = False
    exclude_flags: tuple[str, ...] = ()
    quality: QualitySettings = field(default_factory=QualitySettings)

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"mode {self.mode!r} must be one of {', '.join(MODES)}")
        unknown = set(self.exclude_flags) - set(FLAGS)
        if unknown:
            raise InputError(f"unknown quality flag(s) {sorted(unknown)}; known: {', '.join(FLAGS)}")

    @property
    def target(self) -> Path:
        return Path(self.raw_root) / dataset_folder_name(self.dataset_id, self.name)

    @property
    def work(self) -> Path:
        return self.target.with_name(f".{self.target.name}.pseudolabel")


@dataclass(frozen=True)
class WeakCase:
    case_id: str
    ct: Path
    segbox: Path
    patient_id: str


def run_pseudolabel(job: PseudoLabelJob, *, num_parts: int = 1, part_id: int = 0,
                    overwrite: bool = False,
                    progress: Callable[[int, int], object] | None = None) -> Path | None:
    """Pseudo-label this part's weak cases; with one part, merge too. Returns the dataset or None.

    ``progress(done, total)`` is called with this part's finished and total case counts.

    Raises:
        InputError: bad input (see :func:`check_inputs`); nothing is written then.
    """
    weak = check_inputs(job, overwrite=overwrite)
    settings = _settings(job)
    _open_work_folder(job, settings, restart=overwrite and part_id == 0 and num_parts == 1)
    mine = [c for i, c in enumerate(weak) if i % num_parts == part_id]
    todo = [c for c in mine if not _finished(job, c)]
    done = len(mine) - len(todo)
    if progress is not None:
        progress(done, len(mine))
    if todo:
        from nnunet_ts.pseudolabel.teacher import Teacher

        teacher = Teacher.load(job.teacher)
        for case in todo:
            _pseudo_label_case(job, teacher, case, tag=f"{part_id}-{os.getpid()}")
            done += 1
            if progress is not None:
                progress(done, len(mine))
    return merge(job, overwrite=overwrite) if num_parts == 1 else None


def merge(job: PseudoLabelJob, *, overwrite: bool = False) -> Path:
    """Write the student dataset from a work folder where every weak case is finished.

    Raises:
        InputError: no work folder, unfinished cases (run the missing parts), an existing dataset
            with this id without ``overwrite``.
    """
    from nnunet_ts.datasets.student import StudentCase, write_student_dataset

    weak = check_inputs(job, overwrite=overwrite, teacher=False)
    if not (job.work / "settings.json").is_file():
        raise InputError(f"no pseudo-label work folder {job.work}; run `nnunet_ts pseudolabel` first")
    if json.loads((job.work / "settings.json").read_text()) != _settings(job):
        raise InputError(f"{job.work} was made with other settings or another teacher; merge with the "
                         f"settings of the parts, or rerun them")
    missing = [c.case_id for c in weak if not _finished(job, c)]
    if missing:
        raise InputError(f"{len(missing)} of {len(weak)} weak cases have no pseudo label yet, or their CT "
                         f"or segbox changed since (e.g. {missing[0]}); run the remaining --part-id "
                         f"values (or all parts again), then merge")
    quality = {c.case_id: json.loads((job.work / "cases" / c.case_id / QUALITY_FILE).read_text())
               for c in weak}
    excluded = sorted(c for c, q in quality.items() if set(q["flags"]) & set(job.exclude_flags))
    cases = [StudentCase(case_id=c, ct=ct, source="strong", mask=mask, patient_id=p)
             for c, ct, mask, p in strong_cases(job.strong_dataset)]
    cases += [_student_case(job.work / "cases" / c.case_id, c) for c in weak if c.case_id not in excluded]
    assembled_root = job.work / "assembled"
    shutil.rmtree(assembled_root, ignore_errors=True)
    folder = write_student_dataset(cases, job.dataset_id, job.name, assembled_root)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["nnunet_ts_pseudolabel"] = {
        **_settings(job), "excluded_cases": excluded, "exclude_flags": list(job.exclude_flags),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    (folder / "pseudolabel_quality.csv").write_text(_quality_csv(quality, excluded))
    (folder / "pseudolabel_quality.json").write_text(json.dumps(
        {"summary": summarize(quality), "excluded": excluded, "cases": quality}, indent=2))
    return _move_into_place(folder, job, overwrite)


def _student_case(folder: Path, case: WeakCase):
    """The student dataset's pseudo case from a finished case folder: its soft target and mask taken as
    checked when they are, byte for byte, what the pseudo-label step wrote (``outputs.json``)."""
    from nnunet_ts.datasets.student import StudentCase

    soft, mask = folder / SOFT_TARGET_FILE, folder / MASK_FILE
    volume = None
    try:
        written = json.loads((folder / OUTPUTS_FILE).read_text())
        if written["soft_target"] == sha256(soft) and written["mask"] == sha256(mask):
            volume = float(written["tumour_volume_mm3"])
    except (OSError, ValueError, KeyError, TypeError):  # none (an earlier version's case) or damaged:
        pass                                             # the files are checked as any input
    return StudentCase(case_id=case.case_id, ct=case.ct, source="pseudo", soft_target=soft,
                       mask=mask if volume is not None else None, segbox=case.segbox,
                       patient_id=case.patient_id, checked_volume_mm3=volume)


def check_inputs(job: PseudoLabelJob, *, overwrite: bool, teacher: bool = True) -> list[WeakCase]:
    """Every check that can fail, before anything is written; returns the weak cases.

    Raises:
        InputError: an existing output dataset without ``overwrite``; teacher folds missing or a
            teacher that does not read CT + segbox; a weak case without segbox file, with a CT and
            segbox on different grids, or with an empty segbox (unless ``allow_empty_boxes``);
            strong cases without masks; a case id both strong and weak.
    """
    from nnunet_ts.io.images import check_same_geometry, read_image

    existing = folders_with_id(Path(job.raw_root), job.dataset_id)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists (dataset id {job.dataset_id}); choose another "
                         f"id or pass --overwrite to replace it")
    if teacher:
        check_teacher(job.teacher)
    weak = weak_cases(job.weak_dataset)
    strong_ids = {c for c, *_ in strong_cases(job.strong_dataset)}
    both = sorted(strong_ids & {c.case_id for c in weak})
    if both:
        raise InputError(f"case {both[0]} is in the strong set {job.strong_dataset} and in the weak "
                         f"set {job.weak_dataset}; a case is either strong or weak")
    for case in weak:
        if _finished(job, case):
            continue
        segbox, geometry = read_image(case.segbox, "segbox")
        check_same_geometry(_header(case.ct), case.ct, geometry, case.segbox)
        if not job.allow_empty_boxes and not (segbox > 0.5).any():
            raise InputError(f"weak case {case.case_id} has an empty segbox ({case.segbox}): the "
                             f"teacher needs a box around each tumour; fix the boxes, drop the case, "
                             f"or pass --allow-empty-boxes for scans known to have no tumour")
    return weak


def weak_cases(dataset: Path) -> list[WeakCase]:
    """The weak set's cases: <case>_0000 CT and <case>_0001 segbox (sorted by id).

    ``nnunet_ts dataset weak`` puts them in imagesTs (they have no masks); imagesTr is read too.
    """
    dataset = Path(dataset)
    cts = sorted(p for folder in ("imagesTr", "imagesTs")
                 for p in (dataset / folder).glob(f"*_0000{FILE_ENDING}"))
    if not cts:
        raise InputError(f"no weak cases (imagesTs or imagesTr/*_0000{FILE_ENDING}) in {dataset}; "
                         f"pass a weak dataset written by `nnunet_ts dataset weak`")
    patients = _patients(dataset)
    cases = []
    for ct in cts:
        case_id = ct.name[:-len(f"_0000{FILE_ENDING}")]
        segbox = ct.parent / f"{case_id}_0001{FILE_ENDING}"
        if not segbox.is_file():
            raise InputError(f"weak case {case_id} has no segbox channel ({segbox} missing); the "
                             f"teacher reads CT + segbox: write the weak set with `nnunet_ts dataset weak`")
        cases.append(WeakCase(case_id, ct, segbox, patients.get(case_id, case_id)))
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise InputError(f"{dataset}: a case id is in both imagesTr and imagesTs")
    return sorted(cases, key=lambda c: c.case_id)


def strong_cases(dataset: Path) -> list[tuple[str, Path, Path, str]]:
    """(case id, CT, mask, patient id) of a raw dataset's training cases."""
    dataset = Path(dataset)
    cts = sorted((dataset / "imagesTr").glob(f"*_0000{FILE_ENDING}"))
    if not cts:
        raise InputError(f"no strong cases (imagesTr/*_0000{FILE_ENDING}) in {dataset}")
    patients = _patients(dataset)
    out = []
    for ct in cts:
        case_id = ct.name[:-len(f"_0000{FILE_ENDING}")]
        mask = dataset / "labelsTr" / f"{case_id}{FILE_ENDING}"
        if not mask.is_file():
            raise InputError(f"strong case {case_id} has no mask ({mask} missing); the strong set "
                             f"must be a dataset with labelsTr (student or teacher kind)")
        out.append((case_id, ct, mask, patients.get(case_id, case_id)))
    return out


def _patients(dataset: Path) -> dict[str, str]:
    """Patient ids recorded by `nnunet_ts dataset` (nnunet_ts.json), if any."""
    from nnunet_ts.datasets.raw_writer import METADATA_FILE

    path = Path(dataset) / METADATA_FILE
    if not path.is_file():
        return {}
    cases = json.loads(path.read_text()).get("cases", {})
    return {c: str(v["patient_id"]) for c, v in cases.items() if "patient_id" in v}


def _header(path: Path):
    """The geometry of an image from its header only (the file is checked whole)."""
    from nnunet_ts.io.images import read_header

    return read_header(path, "CT")


def _settings(job: PseudoLabelJob) -> dict:
    """Everything that decides a case's pseudo label (and so whether finished cases can be reused)."""
    provenance = check_teacher(job.teacher)
    return json.loads(json.dumps({
        **provenance, "device": job.teacher.device, "mode": job.mode, "margin_mm": job.margin_mm,
        "allow_empty_boxes": job.allow_empty_boxes, "quality": asdict(job.quality),
        "weak_dataset": str(Path(job.weak_dataset).resolve()),
        "strong_dataset": str(Path(job.strong_dataset).resolve())}))


def _open_work_folder(job: PseudoLabelJob, settings: dict, restart: bool) -> None:
    path = job.work / "settings.json"
    if path.is_file():
        if json.loads(path.read_text()) == settings:
            return
        if not restart:
            raise InputError(f"{job.work} holds a pseudo-label run with other settings or another "
                             f"teacher; rerun with those settings to resume, or pass --overwrite to "
                             f"start afresh")
        shutil.rmtree(job.work)
    (job.work / "cases").mkdir(parents=True, exist_ok=True)
    tmp = job.work / f".settings.{os.getpid()}.json"
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _case_inputs(case: WeakCase) -> dict:
    """The contents (SHA-256) of a weak case's CT and segbox: the key of its finished pseudo label."""
    from nnunet_ts.datasets.resume import file_signature

    return {"ct": file_signature(case.ct)[1:], "segbox": file_signature(case.segbox)[1:]}


def _finished(job: PseudoLabelJob, case: WeakCase) -> bool:
    """Pseudo-labelled by an earlier run (or part) from the same CT and segbox contents."""
    folder = job.work / "cases" / case.case_id
    if not (folder / QUALITY_FILE).is_file():
        return False
    try:
        return json.loads((folder / INPUTS_FILE).read_text()) == _case_inputs(case)
    except (OSError, json.JSONDecodeError):
        return False


def _pseudo_label_case(job: PseudoLabelJob, teacher, case: WeakCase, tag: str) -> None:
    from nnunet_ts.datasets.student import PSEUDO_THRESHOLD
    from nnunet_ts.io.images import read_image, write_image

    inputs = _case_inputs(case)  # before reading: an edit during the run makes the case stale, not wrong
    ct, geometry = read_image(case.ct, "CT")
    segbox, _ = read_image(case.segbox, "segbox")
    if (segbox > 0.5).any():
        probability = teacher.predict(ct, segbox, geometry.spacing_zyx, job.mode, job.margin_mm)
    else:  # allowed empty box: a scan without tumour
        probability = np.zeros(ct.shape, np.float32)
    quality = pseudo_label_quality(probability, segbox, geometry.voxel_volume_mm3, job.quality)
    done = job.work / "cases" / case.case_id
    tmp = job.work / "cases" / f".{case.case_id}.{tag}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    mask = (probability >= PSEUDO_THRESHOLD).astype(np.uint8)
    write_image(tmp / SOFT_TARGET_FILE, probability, geometry)
    write_image(tmp / MASK_FILE, mask, geometry)
    (tmp / OUTPUTS_FILE).write_text(json.dumps({
        "soft_target": sha256(tmp / SOFT_TARGET_FILE), "mask": sha256(tmp / MASK_FILE),
        "tumour_volume_mm3": float(np.count_nonzero(mask)) * geometry.voxel_volume_mm3}))
    (tmp / INPUTS_FILE).write_text(json.dumps(inputs))
    (tmp / QUALITY_FILE).write_text(json.dumps(quality, indent=2))
    if done.exists():  # made from other inputs (edited since); parts never share a case
        shutil.rmtree(done)
    try:
        os.rename(tmp, done)
    except OSError:  # another part finished it first: same inputs, same result
        shutil.rmtree(tmp, ignore_errors=True)


def _quality_csv(quality: dict[str, dict], excluded: Sequence[str]) -> str:
    out = io.StringIO()
    fields = ["case_id", "predicted_volume_mm3", "box_volume_mm3", "mass_in_box", "mean_confidence",
              "flags", "excluded"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for case_id, q in sorted(quality.items()):
        writer.writerow({"case_id": case_id, **{k: q[k] for k in fields[1:5]},
                         "flags": ";".join(q["flags"]), "excluded": case_id in excluded})
    return out.getvalue()


def _move_into_place(folder: Path, job: PseudoLabelJob, overwrite: bool) -> Path:
    existing = folders_with_id(Path(job.raw_root), job.dataset_id)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists (dataset id {job.dataset_id}); pass --overwrite")
    target = job.target
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(folder, target)
    for stale in [p for p in existing if p != target] + ([old] if old else []):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(job.work, ignore_errors=True)
    return target
