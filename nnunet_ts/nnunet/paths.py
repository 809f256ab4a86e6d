"""nnU-Net folder conventions: dataset names, ids, the nnUNet_* environment variables, our trainer folder.

Environment variables are read only when a function is called (never at import) and every
function also takes the path explicitly.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
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


EXT_TRAINER = "nnUNet_extTrainer"  # nnU-Net 2.8's list of extra trainer folders (utilities/find_objects.py)


def trainers_dir() -> Path:
    """The folder holding our trainer modules (``trainers/`` of the source tree when installed -e)."""
    import importlib.util

    spec = importlib.util.find_spec("nnunet_ts.trainers")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def with_our_trainers(current: str | None, extra: Sequence[str | Path] = ()) -> str:
    """``nnUNet_extTrainer``'s value with our trainer folder (and ``extra``) first, each once, the other
    plugins' folders kept after them."""
    ours = [str(trainers_dir()), *map(str, extra)]
    others = [p for p in (current or "").split(os.pathsep) if p and p not in ours]
    return os.pathsep.join([*ours, *others])


def our_trainer_class(name: str):
    """The trainer class ``name`` from our trainer modules (``nnunet_ts.trainers``), or None."""
    import importlib
    import pkgutil

    import nnunet_ts.trainers as ours

    for module in pkgutil.iter_modules(ours.__path__):
        found = getattr(importlib.import_module(f"{ours.__name__}.{module.name}"), name, None)
        if isinstance(found, type):
            return found
    return None


@contextlib.contextmanager
def trainers_findable() -> Iterator[None]:
    """Within the block, nnU-Net's trainer lookup finds our trainers (``recursive_find_trainer_class_by_name``
    searches ``nnUNet_extTrainer``); the environment is restored afterwards. The predictor needs it:
    it rebuilds the network through the trainer class named in the checkpoint.

    The predictor's lookup (``nnunetv2.inference.predict_from_raw_data.recursive_find_trainer_class_by_name``,
    nnU-Net 2.8) first imports every module of nnU-Net's own trainer package, about 3 s per process; within
    the block it looks in our trainer modules first (:func:`our_trainer_class`), then as nnU-Net does.
    """
    import nnunetv2.inference.predict_from_raw_data as predictor_module

    old = os.environ.get(EXT_TRAINER)
    os.environ[EXT_TRAINER] = with_our_trainers(old)
    stock = predictor_module.recursive_find_trainer_class_by_name
    predictor_module.recursive_find_trainer_class_by_name = lambda name: our_trainer_class(name) or stock(name)
    try:
        yield
    finally:
        predictor_module.recursive_find_trainer_class_by_name = stock
        if old is None:
            os.environ.pop(EXT_TRAINER, None)
        else:
            os.environ[EXT_TRAINER] = old
