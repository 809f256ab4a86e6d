"""What every converter shares: the cohort folder, the kept/dropped report, subsets, datasets.

A converter (``msd``, ``nsclc``, ``lungdx``) turns one *source item* (an image file, a patient's
DICOM folder) into zero or more cases written as NIfTI into a cohort folder, or explains why the
item was dropped. :func:`convert_items` runs the items with a progress bar in a resumable work
folder, :func:`finish_conversion` then

1. assigns patients to the ``strong`` / ``weak`` / ``test`` subsets, grouped by patient and
   balanced by tumour volume (:func:`assign_subsets`),
2. writes ``cases.csv`` and ``conversion_report.json`` (every kept case, every dropped item with
   its reason) into the cohort folder,
3. writes the nnU-Net raw datasets with :func:`nnunet_ts.datasets.raw_writer.write_dataset`: teacher
   (id N), student (N + 1) and weak (N + 2), each with patient-grouped, volume-balanced
   ``splits_final.json``. A dataset that would be empty (e.g. a teacher set from a box-only
   source) is skipped and the report says so.
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.manifest import CaseRecord, write_manifest

if TYPE_CHECKING:
    from nnunet_ts.datasets.resume import WorkFolder

REPORT_NAME = "conversion_report.json"
DATASET_KINDS = ("teacher", "student", "weak")


@dataclass(frozen=True)
class ConvertedCase:
    """A case written into the cohort folder (paths relative to it).

    Attributes:
        tumour_volume_mm3: mask volume; for box-only cases the volume of the filled boxes (used only
            to balance splits).
        notes: anything a user should know (snapped contours, clipped boxes, ...).
    """

    case_id: str
    patient_id: str
    ct: str
    mask: str | None
    boxes: str | None
    tumour_volume_mm3: float
    source: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dropped:
    """A source item (or one series of it) that produced no case, and why."""

    source: str
    reason: str


@dataclass
class ConversionOptions:
    """Settings shared by the converters.

    Attributes:
        dataset_id: teacher id; student is ``dataset_id + 1``, weak ``dataset_id + 2``.
        name: dataset name prefix: ``<name>Teacher``, ``<name>Student``, ``<name>Weak``.
        test_fraction: share of patients held out (``imagesTs``/``labelsTs``) in strong sources.
        weak_fraction: share of patients of a strong source used as weak cases (their segbox made
            from the mask, the mask kept in the manifest for evaluation).
        segbox_mode, num_folds, seed: as in ``nnunet_ts dataset``.
        crop_lungs: also crop every scan around each lung for the student dataset
            (``nnunet_ts.datasets.lung_crop``); ``lungmask_weights`` is the R231 state dict path.
    """

    dataset_id: int
    name: str
    test_fraction: float = 0.15
    weak_fraction: float = 0.0
    segbox_mode: str = "per_lesion"
    num_folds: int = 5
    seed: int = 0
    overwrite: bool = False
    crop_lungs: bool = False
    lungmask_weights: str | None = None
    crop_margin_mm: float = 10.0
    workers: int = 1
    extra: dict = field(default_factory=dict)


def safe_id(text: str) -> str:
    """A case/patient id from free text: letters, digits, '_' and '-' only."""
    cleaned = re.sub(r"[^A-Za-z0-9_\-]+", "_", text.strip()).strip("_-")
    return cleaned or "x"


def _convert_safely(convert_one: Callable[[object, Path], list], key: str, item, folder: Path) -> list[dict]:
    """One item's results as JSON-ready dicts; an InputError becomes the item's drop reason."""
    try:
        results = convert_one(item, folder)
    except InputError as exc:
        results = [Dropped(key, str(exc))]
    return [{"type": type(r).__name__, **asdict(r)} for r in results]


def _run(todo: list[tuple[str, object]], convert_one, folder: Path, workers: int):
    """(key, results) per item, in order; in a process pool with ``workers`` > 1."""
    if workers <= 1:
        for key, item in todo:
            yield key, _convert_safely(convert_one, key, item, folder)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: forked workers would inherit torch/OpenMP state of the parent
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [(key, pool.submit(_convert_safely, convert_one, key, item, folder)) for key, item in todo]
        for key, future in futures:
            yield key, future.result()
    finally:  # after an error or Ctrl-C, do not convert the queued items first
        pool.shutdown(wait=True, cancel_futures=True)


def convert_items(items: Sequence[tuple[str, object]], convert_one: Callable[[object, Path], list],
                  cohort: Path, fingerprint: dict, progress: bool = True, desc: str = "convert",
                  workers: int = 1) -> tuple[WorkFolder, list[ConvertedCase], list[Dropped]]:
    """Run ``convert_one(item, work_folder)`` for every ``(key, item)``, resumably.

    ``convert_one`` returns a list of :class:`ConvertedCase` and :class:`Dropped`; an
    :class:`InputError` it raises drops the whole item with the error's message as reason (the
    item is reported, never silently skipped). Finished items of an interrupted run with the same
    ``fingerprint`` are not converted again. With ``workers`` > 1, items are converted in that many
    processes (``convert_one`` and the items must then be picklable).

    Returns:
        (work folder, kept cases, dropped items); :func:`finish_conversion` moves the work
        folder onto ``cohort``.
    """
    from tqdm import tqdm

    from nnunet_ts.datasets.resume import WorkFolder

    work = WorkFolder(cohort, fingerprint)
    kept: list[ConvertedCase] = []
    dropped: list[Dropped] = []
    todo = [(key, item) for key, item in items if key not in work.done]
    with tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item",
              disable=not progress) as bar:
        for key, results in _run(todo, convert_one, work.path, workers):
            work.mark_done(key, results)
            bar.update(1)
            bar.set_postfix(cases=sum(r["type"] == "ConvertedCase" for rs in work.done.values() for r in rs))
    for key, _ in items:
        for entry in work.done[key]:
            entry = dict(entry)
            if entry.pop("type") == "ConvertedCase":
                kept.append(ConvertedCase(**{**entry, "notes": tuple(entry.get("notes", ()))}))
            else:
                dropped.append(Dropped(**entry))
    duplicates = [c for c, n in Counter(k.case_id for k in kept).items() if n > 1]
    if duplicates:
        raise InputError(f"case ids {duplicates[:3]} were produced twice; the source holds the same "
                         f"scan twice, remove the copy")
    return work, kept, dropped


def assign_subsets(cases: Sequence[ConvertedCase], test_fraction: float, weak_fraction: float,
                   seed: int = 0, all_weak: bool = False) -> dict[str, str]:
    """case_id -> ``strong`` / ``weak`` / ``test``, whole patients at a time, balanced by volume.

    Patients are sorted by total tumour volume (largest first, ties broken by a seeded shuffle) and
    dealt out one by one to the subset furthest below its target share, so each subset gets its
    share of large and small tumours. ``all_weak`` (box-only sources) puts everything in ``weak``.
    """
    if all_weak:
        return {c.case_id: "weak" for c in cases}
    if not 0 <= test_fraction < 1 or not 0 <= weak_fraction < 1 or test_fraction + weak_fraction >= 1:
        raise InputError(f"--test-fraction {test_fraction} and --weak-fraction {weak_fraction} must be "
                         f"in [0, 1) with a sum below 1 (the rest are strong cases)")
    volume: dict[str, float] = {}
    for c in cases:
        volume[c.patient_id] = volume.get(c.patient_id, 0.0) + c.tumour_volume_mm3
    patients = sorted(volume)
    order = np.random.default_rng(seed).permutation(len(patients))
    ranked = sorted((patients[i] for i in order), key=lambda p: -volume[p])
    targets = {"test": test_fraction, "weak": weak_fraction, "strong": 1 - test_fraction - weak_fraction}
    counts = dict.fromkeys(targets, 0)
    subset_of: dict[str, str] = {}
    for i, patient in enumerate(ranked, start=1):
        subset = max(targets, key=lambda s: (targets[s] * i - counts[s], s == "strong"))
        subset_of[patient] = subset
        counts[subset] += 1
    return {c.case_id: subset_of[c.patient_id] for c in cases}


def _check_targets(cohort: Path, raw: Path, options: ConversionOptions) -> None:
    from nnunet_ts.nnunet.paths import folders_with_id

    if options.overwrite:
        return
    if cohort.exists():
        raise InputError(f"cohort folder {cohort} exists already; pass --overwrite to convert again "
                         f"and replace it (and the datasets), or choose another --cohort")
    for offset in range(len(DATASET_KINDS)):
        existing = folders_with_id(raw, options.dataset_id + offset)
        if existing:
            raise InputError(f"{existing[0]} already exists; choose another --dataset-id (ids "
                             f"{options.dataset_id}-{options.dataset_id + 2} are used) or pass --overwrite")


def run_conversion(source: str, items: Sequence[tuple[str, object]],
                   convert_one: Callable[[object, Path], list], src: Path, raw: Path,
                   cohort: Path, options: ConversionOptions, *, all_weak: bool = False,
                   progress: bool = True) -> dict:
    """Convert ``items`` into ``cohort`` and write the datasets into ``raw``; returns the report."""
    _check_targets(cohort, raw, options)
    if not items:
        raise InputError(f"found nothing to convert in {src}; check the path points to the {source} "
                         f"download (see `nnunet_ts convert {source} --help` for the layout)")
    fingerprint = {"source": source, "src": str(Path(src).resolve()), "options": {
        k: v for k, v in asdict(options).items() if k not in ("overwrite", "workers")}}
    work, kept, dropped = convert_items(items, convert_one, cohort, fingerprint, progress, desc=source,
                                        workers=options.workers)
    if not kept:
        reasons = "; ".join(f"{d.source}: {d.reason}" for d in dropped[:3])
        raise InputError(f"no case of {src} could be converted ({len(dropped)} dropped; first: "
                         f"{reasons}); fix the inputs and rerun")
    subsets = assign_subsets(kept, options.test_fraction, options.weak_fraction, options.seed, all_weak)
    return finish_conversion(source, work, cohort, raw, kept, dropped, subsets, options, progress)


def finish_conversion(source: str, work, cohort: Path, raw: Path, kept: list[ConvertedCase],
                      dropped: list[Dropped], subsets: dict[str, str], options: ConversionOptions,
                      progress: bool = True) -> dict:
    from nnunet_ts.io.manifest import read_manifest

    root = work.path
    records = [CaseRecord(c.case_id, c.patient_id, subsets[c.case_id], root / c.ct,
                          root / c.mask if c.mask else None, root / c.boxes if c.boxes else None)
               for c in kept]
    write_manifest(root / "cases.csv", records)
    report = {
        "source": source, "kept": len(kept), "dropped": len(dropped),
        "subsets": dict(Counter(subsets.values())),
        "dropped_by_reason": dict(Counter(_reason_kind(d.reason) for d in dropped)),
        "cases": [{**asdict(c), "subset": subsets[c.case_id]} for c in kept],
        "dropped_items": [asdict(d) for d in dropped],
        "datasets": {},
    }
    (root / REPORT_NAME).write_text(json.dumps(report, indent=2))
    # The cohort is complete: move it into place before writing datasets that point into it.
    work.finish()
    records = read_manifest(cohort / "cases.csv")
    report["datasets"] = write_datasets(records, raw, cohort, options, progress)
    (cohort / REPORT_NAME).write_text(json.dumps(report, indent=2))
    return report


def _reason_kind(reason: str) -> str:
    """The reason without file names and series labels, to count drops by kind."""
    import re

    text = re.sub(r"[^\s()]*/[^\s()]*", "<file>", reason)
    if text.startswith("patient ") and ": " in text:  # "<series label>: why"
        text = text.split(": ", 1)[1]
    return text.split("; ")[0][:120]


def write_datasets(records: list[CaseRecord], raw: Path, cohort: Path, options: ConversionOptions,
                   progress: bool = True) -> dict:
    """Teacher, student and weak datasets (skipping empty ones); returns {kind: folder or reason}."""
    from tqdm import tqdm

    from nnunet_ts.datasets.raw_writer import DatasetSpec, write_dataset

    result = {}
    for offset, kind in enumerate(DATASET_KINDS):
        wanted = ("weak",) if kind == "weak" else ("strong",)
        chosen = [r for r in records if r.subset in wanted or (kind != "weak" and r.subset == "test")]
        if not any(r.subset in wanted for r in chosen):
            result[kind] = f"skipped: no {wanted[0]} cases"
            continue
        if kind != "weak" and len({r.patient_id for r in chosen if r.subset == "strong"}) < 2:
            result[kind] = "skipped: fewer than 2 strong patients"
            continue
        if kind == "student" and options.crop_lungs:
            from nnunet_ts.datasets.lung_crop import crop_records

            chosen = crop_records(chosen, cohort / "lung_crops", weights=options.lungmask_weights,
                                  margin_mm=options.crop_margin_mm, progress=progress)
        spec = DatasetSpec(kind=kind, dataset_id=options.dataset_id + offset, name=f"{options.name}"
                           f"{kind.capitalize()}", segbox_mode=options.segbox_mode,
                           num_folds=max(2, min(options.num_folds, _n_patients(chosen, kind))),
                           seed=options.seed, allow_empty_boxes=True)
        with tqdm(total=len(chosen), desc=spec.folder_name, unit="case", disable=not progress,
                  leave=False) as bar:
            folder = write_dataset(chosen, spec, raw, overwrite=options.overwrite,
                                   progress=lambda done: bar.update(done - bar.n))
        if kind == "student" and options.crop_lungs:
            # the dataset records how its lungs were found (a classical fallback is flagged here)
            shutil.copy(cohort / "lung_crops" / "lung_crops.json", folder / "lung_crops.json")
            crops = json.loads((folder / "lung_crops.json").read_text())
            result["lung_crops"] = (f"lung masks by {', '.join(crops['methods'])}"
                                    + (" (FALLBACK: lungmask weights not found)" if crops["fallback_used"] else ""))
        result[kind] = str(folder)
    return result


def _n_patients(records: Iterable[CaseRecord], kind: str) -> int:
    subset = "weak" if kind == "weak" else "strong"
    return len({r.patient_id for r in records if r.subset == subset})


def print_report(report: dict, cohort: Path) -> None:
    """A short human summary of a conversion report."""
    print(f"{report['source']}: kept {report['kept']} case(s) "
          f"({', '.join(f'{n} {s}' for s, n in sorted(report['subsets'].items()))}), "
          f"dropped {report['dropped']}")
    for reason, n in sorted(report["dropped_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  dropped {n:4d}: {reason}")
    for kind, where in report["datasets"].items():
        print(f"  {kind:8s} {where}")
    print(f"details: {cohort / REPORT_NAME}; manifest: {cohort / 'cases.csv'}")


def write_case_files(folder: Path, case_id: str, patient_id: str, ct, mask: np.ndarray | None,
                     rectangles: list | None, source: str, notes: Sequence[str] = ()) -> ConvertedCase:
    """Write ``<case>_ct.nii.gz`` (+ ``_mask.nii.gz`` and ``_boxes.json``) into the cohort folder.

    ``ct`` is a SimpleITK image whose geometry is kept exactly; ``mask`` is (z, y, x) on its grid.
    With a mask and no rectangles, the boxes file holds the mask's per-lesion rectangles (the weak
    form of a strong case).
    """
    import SimpleITK as sitk

    from nnunet_ts.boxes.segbox import rectangles_to_segbox, slice_rectangles
    from nnunet_ts.io.boxes_file import save_rectangles
    from nnunet_ts.io.images import geometry_of, write_image

    geometry = geometry_of(ct)
    ct_name, mask_name, boxes_name = (f"{case_id}_ct.nii.gz", f"{case_id}_mask.nii.gz", f"{case_id}_boxes.json")
    sitk.WriteImage(ct, str(folder / ct_name), useCompression=True)
    if mask is not None:
        write_image(folder / mask_name, mask.astype(np.uint8), geometry)
        if rectangles is None:
            rectangles = slice_rectangles(mask, "per_lesion")
        volume = float(np.count_nonzero(mask)) * geometry.voxel_volume_mm3
    else:
        volume = float(rectangles_to_segbox(rectangles or [], geometry.shape_zyx).sum()) * geometry.voxel_volume_mm3
    save_rectangles(folder / boxes_name, rectangles or [], geometry.shape_zyx)
    return ConvertedCase(case_id, patient_id, ct_name, mask_name if mask is not None else None,
                         boxes_name, volume, source, tuple(notes))
