"""The scans ``nnunet_ts predict`` works on, where their outputs go, and which are finished.

INPUT is one image file (NIfTI, NRRD, MHA), a folder holding one DICOM CT series, or a folder of
scans: image files at its top level and DICOM series anywhere below it (grouped by
SeriesInstanceUID, so one folder may hold several series; non-CT series such as RTSTRUCT, SEG or
PET are left out and listed).

Output names: for a folder OUTPUT, ``OUT/<case>`` + the endings of :data:`ENDINGS`; for a single
scan, OUTPUT may also be ``NAME.nii.gz`` and the other outputs sit beside it (``NAME_seg.dcm`` ...).
Case ids: an image file's name without its ending; a DICOM series' folder path below INPUT with
'/' as '_' (INPUT's own name for a series at its top), plus the series UID's last 8 digits when
several CT series share a folder.

A case is finished when each requested output exists, is not older than any input file (CT files,
boxes file, model checkpoints), and the record ``OUT/.nnunet_ts_predict.json`` says it was made
with the same settings. Reruns skip finished cases; outputs made with other settings are replaced
only with ``--overwrite``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ts.errors import InputError

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
ENDINGS = {"nifti": ".nii.gz", "dicom-seg": "_seg.dcm", "rtstruct": "_rtstruct.dcm",
           "lesions-csv": "_lesions.csv", "lesions-json": "_lesions.json", "preview": "_preview.png"}
OUTPUT_TYPES = ("nifti", "dicom-seg", "rtstruct")
RECORD = ".nnunet_ts_predict.json"


@dataclass
class Case:
    """One scan: an image file (``path``) or a DICOM CT series (``series``, a ``DicomSeries``)."""

    case_id: str
    path: Path
    series: object = None

    @property
    def is_dicom(self) -> bool:
        return self.series is not None

    def dicom_files(self) -> list[Path]:
        """The series' files in slice order (z of the image), or [] for an image file."""
        from nnunet_ts.io.dicom import sorted_slices

        return sorted_slices(self.series)[0] if self.is_dicom else []

    def sop_uids(self) -> list[str] | None:
        from nnunet_ts.io.dicom import sorted_slices

        return sorted_slices(self.series)[1] if self.is_dicom else None

    def input_files(self) -> list[Path]:
        return list(self.series.files) if self.is_dicom else [self.path]

    def read(self):
        """The CT as a SimpleITK image in HU."""
        from nnunet_ts.io.dicom import read_ct
        from nnunet_ts.io.images import read_sitk

        if self.is_dicom:
            return read_ct(self.series)
        return read_sitk(self.path, "CT", finite=True)  # missing, truncated, not 3D, NaN: one clear message


@dataclass
class Discovery:
    cases: list[Case]
    ignored: list[str] = field(default_factory=list)  # series left out and why


def image_case_id(path: Path) -> str:
    name = path.name
    for ending in IMAGE_ENDINGS:
        if name.lower().endswith(ending):
            return name[:-len(ending)]
    return path.stem


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "scan"


def find_cases(input_path: str | Path, series_uid: str | None = None) -> Discovery:
    """The scans of INPUT (see the module docstring).

    Raises:
        InputError: INPUT missing, a file that is not an image, or a folder with no scan.
    """
    from nnunet_ts.io.dicom import ct_exclusion_reason, discover_series

    path = Path(input_path)
    if path.is_file() or not path.exists():
        if not path.exists():
            raise InputError(f"input {path} does not exist")
        if not path.name.lower().endswith(IMAGE_ENDINGS):
            raise InputError(f"input {path} is neither a folder (DICOM or scans) nor an image file "
                             f"({', '.join(IMAGE_ENDINGS)})")
        return Discovery([Case(image_case_id(path), path)])
    images = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_ENDINGS))
    no_dicom = None
    try:
        series = discover_series(path, progress=True)
    except InputError as exc:  # no DICOM file (the reason says what was found instead)
        series, no_dicom = [], str(exc)
    ignored, cts = [], []
    for s in series:
        reason = ct_exclusion_reason(s)
        if series_uid is not None and s.series_uid != series_uid:
            continue
        (ignored.append(f"{s.label()}: {reason}") if reason else cts.append(s))
    if series_uid is not None and not cts:
        raise InputError(f"{path} holds no CT series with UID {series_uid}; fix --series-uid")
    cases = [] if series_uid is not None else [Case(image_case_id(p), p) for p in images]
    per_folder: dict[Path, int] = {}
    for s in cts:
        per_folder[s.folder] = per_folder.get(s.folder, 0) + 1
    for s in cts:
        rel = s.folder.relative_to(path)
        case_id = _safe(path.resolve().name if rel == Path(".") else "_".join(rel.parts))
        if per_folder[s.folder] > 1:
            case_id += "_" + re.sub(r"\D", "", s.series_uid)[-8:]
        cases.append(Case(case_id, s.folder, s))
    if not cases:
        found = f" (left out: {'; '.join(ignored)})" if ignored else f" ({no_dicom})" if no_dicom else ""
        raise InputError(f"{path} holds no CT scan: no image file ({', '.join(IMAGE_ENDINGS)}) at its top "
                         f"level and no DICOM CT series below it{found}")
    seen: dict[str, Case] = {}
    for case in cases:
        if case.case_id in seen:
            raise InputError(f"{case.path} and {seen[case.case_id].path} would both be written as "
                             f"'{case.case_id}'; rename one or predict them separately")
        seen[case.case_id] = case
    return Discovery(cases, ignored)


def output_paths(stem: Path, types: Sequence[str], lesion_table: bool, preview: bool) -> dict[str, Path]:
    """Requested outputs of a case whose outputs start with ``stem`` (e.g. OUT/case_001)."""
    keys = [*types, *(("lesions-csv", "lesions-json") if lesion_table else ()), *(("preview",) if preview else ())]
    return {k: stem.with_name(stem.name + ENDINGS[k]) for k in keys}


class Record:
    """``OUT/.nnunet_ts_predict.json``: per output stem (``<case>`` or ``NAME``), the settings its outputs
    were made with."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / RECORD
        try:
            self.cases: dict = json.loads(self.path.read_text()).get("cases", {})
        except (OSError, ValueError, AttributeError):
            self.cases = {}

    def state(self, stem: str, outputs: dict[str, Path], inputs: Sequence[Path], settings: dict) -> str:
        """``finished``, ``new`` (no output yet, or left by an interrupted run with these settings),
        ``stale`` (an input is newer) or ``other-settings``."""
        from nnunet_ts.io.atomic import is_current

        present = [p for p in outputs.values() if p.exists()]
        if not present:
            return "new"
        same = self.cases.get(stem) == settings
        if not same:
            return "other-settings"
        if len(present) < len(outputs):
            return "new"
        return "finished" if all(is_current(p, *inputs) for p in present) else "stale"

    def mark(self, stem: str, settings: dict) -> None:
        from nnunet_ts.io.atomic import write_text_atomic

        self.cases[stem] = settings
        write_text_atomic(self.path, json.dumps({"version": 1, "cases": self.cases}, indent=1))
