"""Write a synthetic cohort to a folder: :func:`write_cohort`.

Output (all in ``out_dir``)::

    cases.csv               manifest: case_id, patient_id, subset, ct, mask, boxes (see nnunet_ts.io.manifest)
    synth_0000_ct.nii.gz    CT, int16 HU
    synth_0000_mask.nii.gz  binary tumour mask (uint8 0/1) on the CT grid
    synth_0000_boxes.json   per-slice, per-lesion rectangles of the mask (see nnunet_ts.io.boxes_file)
    lesions.json            per case: seed, spacing, noise, and each tumour's centre, size, HU, type
    synth.json              seed, counts and the full SynthConfig, to regenerate the cohort

Case ``i`` is drawn from a seed derived from ``(seed, i)`` only, so adding cases or moving the
strong/weak/test boundaries never changes an existing case's images. Subsets are consecutive
(strong, then weak, then test); patients (1-2 scans by default) are grouped within a subset, so a
patient never straddles two subsets. The scans of one patient are independent draws: the grouping
exercises patient-level splitting, it does not model follow-up anatomy.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.datasets.resume import WorkFolder
from nnunet_ts.errors import InputError
from nnunet_ts.io.manifest import MANIFEST_NAME, SUBSETS, CaseRecord, write_manifest
from nnunet_ts.synth.config import SynthConfig

CASE_PREFIX = "synth_"
PATIENT_PREFIX = "synth_p"
LESIONS_NAME = "lesions.json"
CASE_FILES = ("_ct.nii.gz", "_mask.nii.gz", "_boxes.json")
SETTINGS_NAME = "synth.json"


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a cohort drawn with ``seed``; independent of the cohort's size."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0])


def case_id(index: int) -> str:
    return f"{CASE_PREFIX}{index:04d}"


def assign_patients(subsets: list[str], seed: int, scans_per_patient: tuple[float, ...]) -> list[str]:
    """Patient id of each case: consecutive cases of one subset grouped into patients whose number
    of scans follows ``scans_per_patient`` (P(1), P(2), ...); no patient spans two subsets."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9A71E47]))
    patients: list[str] = []
    number, i = 0, 0
    while i < len(subsets):
        scans = 1 + int(rng.choice(len(scans_per_patient), p=scans_per_patient))
        j = i
        while j < len(subsets) and j - i < scans and subsets[j] == subsets[i]:
            j += 1
        patients.extend([f"{PATIENT_PREFIX}{number:04d}"] * (j - i))
        number, i = number + 1, j
    return patients


@dataclass(frozen=True)
class _Task:
    index: int
    seed: int
    case_id: str
    folder: str
    config: SynthConfig


def _make_case(task: _Task) -> dict:
    """Generate and write one case (runs in a worker process); returns its lesions.json entry."""
    from nnunet_ts.boxes.segbox import slice_rectangles
    from nnunet_ts.io.boxes_file import save_rectangles
    from nnunet_ts.io.images import write_image
    from nnunet_ts.synth.generator import generate_case

    case = generate_case(task.seed, task.config)
    folder = Path(task.folder)
    write_image(folder / f"{task.case_id}_ct.nii.gz", case.ct, case.geometry)
    write_image(folder / f"{task.case_id}_mask.nii.gz", case.mask, case.geometry)
    save_rectangles(folder / f"{task.case_id}_boxes.json", slice_rectangles(case.mask, "per_lesion"),
                    case.mask.shape)
    geo = case.geometry
    lesions = []
    for lesion in case.lesions:
        z, y, x = lesion.centre_zyx
        world = [round(geo.origin[k] + idx * geo.spacing[k], 2) for k, idx in enumerate((x, y, z))]
        lesions.append({"centre_voxel_zyx": [z, y, x], "centre_mm_xyz": world, **{
            k: v for k, v in asdict(lesion).items() if k != "centre_zyx"}})
    acq = case.acquisition
    return {"case_id": task.case_id, "seed": task.seed, "spacing_xyz_mm": list(geo.spacing),
            "origin_xyz_mm": list(geo.origin), "noise_sigma_hu": round(acq.noise_sigma_hu, 2),
            "noise_correlation_vox": round(acq.noise_correlation_vox, 3), "lesions": lesions}


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} is a file; give a folder path for the cohort")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {out_dir} is not empty; pass --overwrite (overwrite=True) "
                             f"to replace it, or choose another folder")
        if not (out_dir / MANIFEST_NAME).is_file():
            raise InputError(f"refusing to replace {out_dir}: it has no {MANIFEST_NAME}, so it does not "
                             f"look like a cohort written by nnunet_ts synth; empty or remove it yourself")


def _run(tasks: list[_Task], workers: int, progress: bool, on_done: Callable[[_Task, dict], None],
         already_done: int = 0) -> None:
    """Make every task's case; ``on_done(task, lesions entry)`` is called as each one finishes."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks) + already_done, initial=already_done, desc="synth", unit="case",
               disable=not progress)
    try:
        if workers <= 1:
            for task in tasks:
                on_done(task, _make_case(task))
                bar.update()
        else:
            # spawn: workers start clean, whatever threads (torch, BLAS) the parent has running.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                pending = {pool.submit(_make_case, task): task for task in tasks}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        task = pending.pop(future)
                        if future.exception() is not None:
                            pool.shutdown(wait=True, cancel_futures=True)
                            raise future.exception()
                        on_done(task, future.result())
                        bar.update()
    finally:
        bar.close()


def write_cohort(out_dir: str | Path, n_strong: int, n_weak: int, n_test: int, seed: int = 0,
                 config: SynthConfig | None = None, overwrite: bool = False, workers: int | None = None,
                 progress: bool = True) -> list[CaseRecord]:
    """Generate ``n_strong + n_weak + n_test`` cases into ``out_dir`` (see the module docstring).

    The cohort is written to a hidden sibling folder (``.<out_dir>.partial``) and renamed into place
    at the end, so ``out_dir`` never holds a half-written cohort; an old cohort there is replaced
    only then. After an interruption, the same call resumes: finished cases are kept.

    Args:
        workers: processes to use; default all CPUs (capped at the number of cases); 1 = in-process.
        progress: show a tqdm progress bar.

    Returns:
        The manifest records, with paths inside ``out_dir``.

    Raises:
        InputError: negative or zero counts, a negative seed, ``out_dir`` not empty without
            ``overwrite``, or not a previous cohort with it.
    """
    config = config or SynthConfig()
    counts = {"strong": n_strong, "weak": n_weak, "test": n_test}
    if any(int(n) < 0 for n in counts.values()) or sum(counts.values()) < 1:
        raise InputError(f"case counts must be >= 0 with at least one case in total, got "
                         f"strong={n_strong}, weak={n_weak}, test={n_test}")
    if int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    out_dir = Path(out_dir).absolute()
    _check_out_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    subsets = [name for name in SUBSETS for _ in range(int(counts[name]))]
    patients = assign_patients(subsets, seed, config.scans_per_patient)
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(subsets)))
    # Case i depends only on (seed, i, config): cases finished by an interrupted run are reused.
    work = WorkFolder(out_dir, {"generator": "nnunet_ts.synth", "seed": int(seed), "config": asdict(config)})
    temp = work.path
    tasks = [_Task(i, case_seed(seed, i), case_id(i), str(temp), config) for i in range(len(subsets))]
    finished = {t.case_id for t in tasks if t.case_id in work.done
                and all((temp / f"{t.case_id}{suffix}").is_file() for suffix in CASE_FILES)}
    keep = {f"{c}{suffix}" for c in finished for suffix in CASE_FILES}
    for path in temp.iterdir():
        if not path.name.startswith(".") and path.name not in keep:
            path.unlink()  # cases of an earlier, larger request, or cut off mid-write
    _run([t for t in tasks if t.case_id not in finished], workers, progress,
         lambda task, info: work.mark_done(task.case_id, info), already_done=len(finished))
    records = [CaseRecord(t.case_id, patients[t.index], subsets[t.index],
                          ct=temp / f"{t.case_id}_ct.nii.gz", mask=temp / f"{t.case_id}_mask.nii.gz",
                          boxes=temp / f"{t.case_id}_boxes.json") for t in tasks]
    write_manifest(temp / MANIFEST_NAME, records)
    (temp / LESIONS_NAME).write_text(json.dumps([work.done[t.case_id] for t in tasks], indent=1))
    settings = {"generator": "nnunet_ts.synth", "seed": int(seed), "n_strong": int(n_strong),
                "n_weak": int(n_weak), "n_test": int(n_test), "config": asdict(config)}
    (temp / SETTINGS_NAME).write_text(json.dumps(settings, indent=1))
    work.finish()
    return [CaseRecord(r.case_id, r.patient_id, r.subset, out_dir / r.ct.name, out_dir / r.mask.name,
                       out_dir / r.boxes.name) for r in records]
