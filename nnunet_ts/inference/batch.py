"""``nnunet_ts predict`` over one scan or a folder of scans: outputs per case, resume, a summary.

One model is loaded once; each case is read, segmented (:func:`predict.predict_ct`) and its outputs
written, every file atomically (a temporary file renamed). A case that fails (unreadable scan,
boxes that do not fit, ...) is reported and the others go on; the run fails at the end if any did.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.inference.cases import Case, Record, output_paths
from nnunet_ts.inference.predict import PredictOptions


@dataclass(frozen=True)
class OutputRequest:
    """What to write per case: ``types`` (``nifti``, ``dicom-seg``, ``rtstruct``), the lesion table
    (CSV + JSON, with a mask), a ``preview`` PNG."""

    types: tuple[str, ...] = ("nifti",)
    lesion_table: bool = True
    preview: bool = False


@dataclass
class CaseJob:
    case: Case
    stem: Path                    # outputs are stem + ending (cases.ENDINGS)
    boxes: Path | None = None     # the case's box file (a box-guided teacher)


@dataclass
class Summary:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unexpected: bool = False  # a failure other than bad input (a library error, a bug)
    ignored: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{len(self.written)} written, {len(self.skipped)} skipped (finished earlier), "
               f"{len(self.failed)} failed"]
        out += [f"  failed {case}: {reason}" for case, reason in self.failed.items()]
        out += [f"  left out (not a CT volume): {reason}" for reason in self.ignored]
        return out


def check_request(request: OutputRequest, options: PredictOptions, jobs: Sequence[CaseJob]) -> None:
    """Refuse combinations that cannot work, before anything runs.

    Raises:
        InputError: DICOM outputs for a scan that is not a DICOM series; DICOM outputs, lesion
            table or preview with probabilities (--threshold -1).
    """
    dicom_types = [t for t in request.types if t != "nifti"]
    if options.threshold == -1 and (dicom_types or request.preview):
        raise InputError("--threshold -1 writes probabilities; --output-type dicom-seg/rtstruct and --preview "
                         "need a mask: give a threshold in [0, 1]")
    not_dicom = [j.case.path for j in jobs if not j.case.is_dicom]
    if dicom_types and not_dicom:
        raise InputError(f"--output-type {' '.join(dicom_types)} needs DICOM input (the output refers to the "
                         f"CT's series), but {not_dicom[0]} is an image file; give the DICOM series or "
                         f"use --output-type nifti")


def run_jobs(jobs: Sequence[CaseJob], load_predictor: Callable[[], object], options: PredictOptions,
             request: OutputRequest,
             settings: dict, model_inputs: Sequence[Path], *, segbox_for: Callable | None = None,
             overwrite: bool = False, echo: Callable[[str], None] = print, progress: bool = True) -> Summary:
    """Predict every job not finished earlier; returns what happened.

    Args:
        load_predictor: returns the predictor; called once, after the first unfinished scan was read
            (a bad scan is reported before the model loads).
        settings: everything that changes a result (model, options); stored per case for resume.
        model_inputs: files whose change makes outputs stale (the model's checkpoints).
        segbox_for: ``(job, image) -> segbox`` for a box-guided teacher (None: CT-only model).
        echo: where per-case reports go (what was written, the lesion table); failures go to stderr.

    Raises:
        InputError: outputs made with other settings exist and ``overwrite`` is false (checked for
            every case before any prediction); the one job's bad input when there is one job.
    """
    from tqdm import tqdm

    records: dict[Path, Record] = {}
    todo, summary = [], Summary()
    for job in jobs:
        job.stem.parent.mkdir(parents=True, exist_ok=True)
        record = records.setdefault(job.stem.parent, Record(job.stem.parent))
        outputs = output_paths(job.stem, request.types, request.lesion_table and options.threshold != -1,
                               request.preview)
        case_settings = {**settings, "boxes": str(job.boxes.resolve()) if job.boxes else None}
        inputs = [*model_inputs, *([job.boxes] if job.boxes and job.boxes.is_file() else [])]
        try:
            state = record.state(job.stem.name, outputs, [*job.case.input_files(), *inputs], case_settings)
        except OSError as exc:
            summary.failed[job.case.case_id] = f"input unreadable ({exc})"
            continue
        if state == "finished":
            summary.skipped.append(job.case.case_id)
        elif state == "other-settings" and not overwrite:
            existing = next(p for p in outputs.values() if p.exists())
            raise InputError(f"{existing} exists and was not made by this command with these settings; pass "
                             f"--overwrite to replace it or choose another OUTPUT")
        else:
            todo.append((job, record, outputs, case_settings))
    loaded = []

    def predictor():
        if not loaded:
            loaded.append(load_predictor())
        return loaded[0]

    for job, record, outputs, case_settings in tqdm(todo, desc="predict", unit="scan", disable=not progress or
                                                    len(todo) < 2):
        try:
            record.mark(job.stem.name, case_settings)  # before writing: an interrupted case is redone
            lines = predict_job(job, predictor, options, outputs, segbox_for)
            summary.written.append(job.case.case_id)
            for line in lines:
                echo(line)
        except (InputError, ValueError, RuntimeError, OSError) as exc:
            if isinstance(exc, InputError) and len(jobs) == 1:
                raise  # one scan: its bad input is the command's error (exit status 3)
            summary.unexpected |= not isinstance(exc, (InputError, OSError))
            summary.failed[job.case.case_id] = str(exc).strip().splitlines()[-1] if str(exc).strip() else \
                type(exc).__name__
            print(f"{job.case.case_id}: error: {summary.failed[job.case.case_id]}", file=sys.stderr)
    return summary


def predict_job(job: CaseJob, predictor: Callable[[], object], options: PredictOptions, outputs: dict[str, Path],
                segbox_for: Callable | None) -> list[str]:
    """Segment one case and write its outputs; returns the lines to print. ``predictor()`` gives the
    predictor (loaded once the scan and its boxes were read)."""
    import SimpleITK as sitk

    from nnunet_ts.inference.predict import predict_ct, write_like

    image = job.case.read()
    segbox = segbox_for(job, image) if segbox_for is not None else None
    result = predict_ct(image, predictor(), options, segbox=segbox)
    written = []
    if "nifti" in outputs:
        write_like(result.output, image, outputs["nifti"])
        written.append(outputs["nifti"])
    lines = []
    if result.is_mask:
        from nnunet_ts.outputs import (
            format_lesion_table,
            measure_lesions,
            write_dicom_seg,
            write_lesion_table,
            write_preview,
            write_rtstruct,
        )

        lungs = result.lungs.labels if result.lungs is not None else None
        lesions = measure_lesions(result.output, image, probability=result.probability, lungs=lungs)
        if "dicom-seg" in outputs:
            written.append(write_dicom_seg(result.output, job.case.dicom_files(), outputs["dicom-seg"]))
        if "rtstruct" in outputs:
            written.append(write_rtstruct(result.output, job.case.dicom_files(), outputs["rtstruct"]))
        if "lesions-csv" in outputs:
            stem = outputs["lesions-csv"].with_name(outputs["lesions-csv"].name[:-len(".csv")])
            written.extend(write_lesion_table(lesions, stem))
            lines.append(f"{job.case.case_id}: {len(lesions)} lesion(s)")
            lines.append(format_lesion_table(lesions))
        if "preview" in outputs:
            hu = sitk.GetArrayFromImage(image)
            written.append(write_preview(hu, result.output, image, lesions, outputs["preview"],
                                         probability=result.probability))
    what = "probability map" if not result.is_mask else f"{int(np.count_nonzero(result.output))} tumour voxels"
    lung_note = f"; lung mask: {result.info['lung_mask']}" if result.info and "lung_mask" in result.info else ""
    lines.insert(0, f"{job.case.case_id}: {what}{lung_note}; wrote {', '.join(str(p) for p in written)}")
    return lines
