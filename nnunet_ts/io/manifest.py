"""The case manifest: the input format of ``nnunet_ts dataset`` and the output of ``nnunet_ts synth``
and the converters.

``cases.csv`` has one row per scan with the columns

=========== ==================================================================================
case_id     unique scan id (letters, digits, '_' and '-'); becomes the nnU-Net case identifier
patient_id  the patient the scan belongs to; splits never put one patient in two folds
subset      ``strong`` (voxel mask), ``weak`` (boxes only) or ``test`` (held out)
ct          path to the CT (NIfTI), relative to the manifest's folder or absolute
mask        path to the binary tumour mask on the CT grid, or empty
boxes       path to a ``*_boxes.json`` of per-slice rectangles (see ``io.boxes_file``), or empty
=========== ==================================================================================
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nnunet_ts.errors import InputError

MANIFEST_NAME = "cases.csv"
COLUMNS = ("case_id", "patient_id", "subset", "ct", "mask", "boxes")
SUBSETS = ("strong", "weak", "test")
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    patient_id: str
    subset: str
    ct: Path
    mask: Path | None = None
    boxes: Path | None = None


def write_manifest(path: str | Path, records: Iterable[CaseRecord]) -> None:
    """Write ``cases.csv``; paths inside the manifest's folder are stored relative to it."""
    path = Path(path)
    root = path.parent.resolve()

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        p = Path(p).resolve()
        return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in records:
            writer.writerow([r.case_id, r.patient_id, r.subset, rel(r.ct), rel(r.mask), rel(r.boxes)])


def read_manifest(path: str | Path) -> list[CaseRecord]:
    """Read and validate ``cases.csv`` (a folder holding one is accepted too).

    Raises:
        InputError: missing file, missing columns, bad case ids, duplicates, unknown subsets.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise InputError(f"case manifest {path} does not exist; create it with `nnunet_ts synth` "
                         f"or write a CSV with columns {', '.join(COLUMNS)}")
    root = path.parent
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("case_id", "patient_id", "subset", "ct") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"case manifest {path} lacks the column(s) {', '.join(missing)}; "
                             f"expected columns: {', '.join(COLUMNS)}")
        rows = list(reader)
    records, seen = [], set()
    for line, row in enumerate(rows, start=2):
        case_id = (row.get("case_id") or "").strip()
        where = f"case manifest {path}, line {line}"
        if not _CASE_ID.match(case_id):
            raise InputError(f"{where}: case_id {case_id!r} must be letters, digits, '_' or '-'")
        if case_id in seen:
            raise InputError(f"{where}: case_id {case_id!r} appears twice; case ids must be unique")
        seen.add(case_id)
        subset = (row.get("subset") or "").strip()
        if subset not in SUBSETS:
            raise InputError(f"{where}: subset {subset!r} must be one of {', '.join(SUBSETS)}")
        patient = (row.get("patient_id") or "").strip() or case_id

        ct, mask, boxes = (_resolve(root, row.get(col)) for col in ("ct", "mask", "boxes"))
        if ct is None:
            raise InputError(f"{where}: the ct column is empty")
        records.append(CaseRecord(case_id, patient, subset, ct, mask, boxes))
    if not records:
        raise InputError(f"case manifest {path} has no cases")
    return records


def _resolve(root: Path, value: str | None) -> Path | None:
    """A manifest path: relative to the manifest's folder unless absolute; None when empty."""
    value = (value or "").strip()
    if not value:
        return None
    return Path(value) if Path(value).is_absolute() else root / value
