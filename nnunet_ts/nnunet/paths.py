"""nnU-Net folder conventions: dataset names, ids and the nnUNet_* environment variables.

Environment variables are read only when a function is called (never at import) and every
function also takes the path explicitly.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from nnunet_ts.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name`` after checking id (1-999) and name (letters, digits, '_', '-')."""
    if not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise InputError(f"dataset id {dataset_id!r} must be an integer from 1 to 999")
    if not _NAME.match(name):
        raise InputError(f"dataset name {name!r} must be letters, digits, '_' or '-' (e.g. LungTeacher)")
    return f"Dataset{dataset_id:03d}_{name}"


def folders_with_id(root: Path | None, dataset_id: int) -> list[Path]:
    """Existing ``DatasetXXX_*`` folders for an id under ``root`` (empty when root is missing)."""
    if root is None or not Path(root).is_dir():
        return []
    prefix = f"Dataset{dataset_id:03d}_"
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith(prefix))


def env_root(variable: str, given: str | Path | None, required: bool = True) -> Path | None:
    """An nnU-Net root folder: ``given`` if set, else the environment variable ``variable``.

    Raises:
        InputError: neither is set and ``required``.
    """
    if given is not None:
        return Path(given)
    value = os.environ.get(variable)
    if value:
        return Path(value)
    if required:
        raise InputError(f"{variable} is not set; export it (see `nnunet_ts env --root DIR`) or "
                         f"pass the folder explicitly")
    return None
