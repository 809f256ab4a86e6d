"""Files written whole or not at all, and the staleness test of derived files.

A crash or a second process (two folds training at once) must never leave a truncated file that
looks finished: each writer fills a temporary file beside the target and renames it over the target
(``os.replace`` is atomic on one file system).
"""
from __future__ import annotations

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
    """``target`` exists and is not older than any of ``inputs`` (modification times)."""
    if not target.is_file():
        return False
    mtime = target.stat().st_mtime_ns
    return all(p.stat().st_mtime_ns <= mtime for p in inputs)
