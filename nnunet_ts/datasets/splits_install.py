"""Put a raw dataset's ``splits_final.json`` where nnU-Net reads it."""
from __future__ import annotations

import shutil
from pathlib import Path

from nnunet_ts.errors import InputError


def install_splits(raw_dataset: Path, preprocessed_root: Path, overwrite: bool = False) -> Path:
    """Copy ``raw_dataset/splits_final.json`` to ``preprocessed_root/<dataset folder>/``.

    nnU-Net reads splits only from its preprocessed folder and otherwise makes random 5-fold splits
    that ignore patients. An existing different file there is kept unless ``overwrite``.
    """
    source = Path(raw_dataset) / "splits_final.json"
    if not source.is_file():
        raise InputError(f"{source} does not exist; write the dataset with `nnunet_ts dataset`")
    target = Path(preprocessed_root) / Path(raw_dataset).name / "splits_final.json"
    if target.is_file() and target.read_bytes() != source.read_bytes() and not overwrite:
        raise InputError(f"{target} exists and differs from {source}; delete it or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
