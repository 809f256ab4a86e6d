"""Files written whole or not at all, and the staleness test of derived files (by input contents).

A crash or a second process (two folds training at once) must never leave a truncated file that
looks finished: each writer fills a temporary file beside the target and renames it over the target
(``os.replace`` is atomic on one file system).
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def write_atomic(path: str | Path, fill: Callable[[IO], object], mode: str = "wb", newline: str | None = None) -> None:
    """Writes ``path`` through ``fill(file)``: a temporary file in the same folder renamed over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": newline})) as f:
            fill(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text), mode="w", newline="")


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    write_atomic(path, lambda f: np.save(f, array))


def is_current(target: Path, *inputs: Path) -> bool:
    """``target`` exists, is not older than any of ``inputs``, and was made from their present contents.

    The contents are checked against the record :func:`mark_current` leaves beside ``target``
    (``.inputs/<name>.json``: size and SHA-256 per input file name), so an input edited in place is
    caught even when its modification time was put back (``cp -p``, ``rsync -t``). Inputs the record
    does not hold, or a target without a record (made by an older version), are judged by
    modification times alone.
    """
    target = Path(target)
    if not target.is_file():
        return False
    mtime = target.stat().st_mtime_ns
    if any(Path(p).stat().st_mtime_ns > mtime for p in inputs):
        return False
    try:
        recorded = json.loads(_record_path(target).read_text())
    except (OSError, json.JSONDecodeError):
        return True
    current = _signatures(inputs)
    return all(recorded.get(name, sig) == sig for name, sig in current.items())


def mark_current(target: Path, *inputs: Path) -> None:
    """Record the contents of ``inputs`` that ``target`` was just made from (see :func:`is_current`)."""
    record = _record_path(Path(target))
    record.parent.mkdir(exist_ok=True)
    write_text_atomic(record, json.dumps(_signatures(inputs)))


def _record_path(target: Path) -> Path:
    # a hidden folder beside the target, not a file: nnU-Net infers a preprocessed folder's format
    # from the endings of the files in it and refuses any ending it does not know
    return target.parent / ".inputs" / f"{target.name}.json"


def _signatures(inputs) -> dict[str, list]:
    from nnunet_ts.datasets.resume import file_signature

    return {Path(p).name: file_signature(p)[1:] for p in inputs}
