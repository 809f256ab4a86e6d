"""A trained model as one shareable zip, and what ``predict`` needs to know about it.

Layout: the zip holds exactly what nnU-Net's own ``nnUNetv2_export_model_to_zip`` writes (nnunetv2
2.8.1, ``model_sharing/model_export.py``), relative to ``nnUNet_results``::

    DatasetXXX_Name/<Trainer>__<Plans>__<configuration>/plans.json, dataset.json,
        dataset_fingerprint.json, fold_N/<checkpoint>, fold_N/progress.png,
        fold_N/validation/summary.json, nnunet_ts_model.json (ours, see :class:`ModelInfo`)

so stock ``nnUNetv2_install_pretrained_model_from_zip`` installs it too (it extracts into
``nnUNet_results``), and ``nnunet_ts model install`` installs stock zips. We write the zip ourselves
rather than calling ``export_pretrained_model``: that function reads ``nnUNet_results`` when
nnU-Net is first imported (not the folder the user names), selects the model by dataset id, and
asserts ``progress.png`` and ``validation/summary.json`` in every fold (absent when training ran
with ``--val`` skipped or without plotting); here those two are exported when present.
Installing checks every name stays inside the target, never replaces an installed model without
``overwrite``, and moves the model folder into place only when it is complete.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nnunet_ts import __version__
from nnunet_ts.boxes.segbox import SEGBOX_MODES
from nnunet_ts.errors import InputError

MODEL_INFO_FILE = "nnunet_ts_model.json"
FORMAT = "nnunet_ts.model"
_DESCRIPTION_FORM = re.compile(r"\((" + "|".join(SEGBOX_MODES) + r") segbox\)")


@dataclass(frozen=True)
class ModelInfo:
    """What ``predict`` must know about a trained model beyond nnU-Net's files.

    Attributes:
        trainer, plans, configuration, dataset: from the model folder's name and location.
        channels: input channel names (``dataset.json``): ``["CT"]`` for a student or baseline,
            ``["CT", "noNorm"]`` for a box-guided teacher.
        segbox_form: the teacher's box form (``per_lesion``, ``per_slice`` or ``box3d``, see
            ``nnunet_ts.boxes.segbox``); None for a CT-only model or when not recorded.
        crop_lungs: trained on one crop per lung (predict must crop the same way); None: not recorded.
        crop_margin_mm: the crops' margin around each lung (mm).
        folds, checkpoint: what an export packed (None: not exported).
        nnunet_ts_version: the version that wrote this record.
        source: where the record came from (``nnunet_ts_model.json`` or ``dataset.json``).
    """

    trainer: str
    plans: str
    configuration: str
    dataset: str
    channels: tuple[str, ...]
    segbox_form: str | None = None
    crop_lungs: bool | None = None
    crop_margin_mm: float = 10.0
    folds: tuple[str, ...] | None = None
    checkpoint: str | None = None
    nnunet_ts_version: str | None = None
    source: str = "dataset.json"

    @property
    def is_teacher(self) -> bool:
        return len(self.channels) > 1

    def to_json(self) -> dict:
        doc = asdict(self)
        doc.pop("source")
        return {"format": FORMAT, "version": 1, **doc}


def _split_folder_name(folder: Path) -> tuple[str, str, str]:
    parts = folder.name.split("__")
    if len(parts) != 3:
        raise InputError(f"model folder {folder} is not named <Trainer>__<Plans>__<configuration>; pass the "
                         f"folder nnUNetv2_train wrote (nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<config>)")
    return parts[0], parts[1], parts[2]


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` if it holds plans.json and dataset.json, else one clear error."""
    folder = Path(folder)
    for name in ("plans.json", "dataset.json"):
        if not (folder / name).is_file():
            raise InputError(f"model folder {folder} has no {name}; pass the folder nnUNetv2_train wrote "
                             f"(nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>) or "
                             f"one installed by `nnunet_ts model install`")
    return folder


def read_model_info(folder: str | Path, raw_root: str | Path | None = None) -> ModelInfo:
    """The model's record: ``nnunet_ts_model.json`` when present (an exported model), else derived.

    Derived: channels from ``dataset.json``; the segbox form from its ``nnunet_ts_segbox_mode`` entry
    or the ``(<form> segbox)`` in the description ``nnunet_ts dataset`` writes; lung crops from the
    raw dataset's ``lung_crops.json`` when ``raw_root`` (nnUNet_raw) holds the dataset.
    """
    folder = check_model_folder(folder)
    path = folder / MODEL_INFO_FILE
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            fields = {k: doc[k] for k in ModelInfo.__dataclass_fields__ if k in doc and k != "source"}
            for key in ("channels", "folds"):
                if fields.get(key) is not None:
                    fields[key] = tuple(str(v) for v in fields[key])
            return ModelInfo(**fields, source=MODEL_INFO_FILE)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{path} is not a valid {FORMAT} record ({exc}); export the model again with "
                             f"`nnunet_ts model export` or delete the file") from None
    trainer, plans, configuration = _split_folder_name(folder)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    names = dataset_json.get("channel_names", dataset_json.get("modality", {}))
    channels = tuple(str(names[k]) for k in sorted(names, key=int))
    form = None
    if len(channels) > 1:
        form = dataset_json.get("nnunet_ts_segbox_mode")
        match = _DESCRIPTION_FORM.search(str(dataset_json.get("description", "")))
        form = form or (match.group(1) if match else None)
    crop, margin = None, 10.0
    if raw_root is not None and (Path(raw_root) / folder.parent.name).is_dir():
        crops = Path(raw_root) / folder.parent.name / "lung_crops.json"
        crop = crops.is_file()
        if crop:
            margin = float(json.loads(crops.read_text()).get("margin_mm", margin))
    return ModelInfo(trainer, plans, configuration, folder.parent.name, channels, form, crop, margin,
                     nnunet_ts_version=None, source="dataset.json")


def trained_folds(folder: Path, checkpoint: str) -> tuple[str, ...]:
    """Folds of ``folder`` holding ``checkpoint`` ("all" or numbers as strings), sorted."""
    found = [p.name[len("fold_"):] for p in folder.glob("fold_*") if (p / checkpoint).is_file()]
    return tuple(sorted(found, key=lambda f: (f == "all", int(f) if f.isdigit() else 0)))


def export_model(folder: str | Path, zip_path: str | Path, *, folds: Sequence[str] | None = None,
                 checkpoints: Sequence[str] = ("checkpoint_final.pth",), crop_lungs: bool | None = None,
                 crop_margin_mm: float | None = None, segbox_form: str | None = None,
                 raw_root: str | Path | None = None, overwrite: bool = False) -> ModelInfo:
    """Write ``zip_path``: the model folder's files in nnU-Net's export layout plus our record.

    Args:
        folds: folds to pack (default: every fold holding the first checkpoint).
        crop_lungs, crop_margin_mm, segbox_form: override what :func:`read_model_info` finds.

    Raises:
        InputError: not a model folder, a fold or checkpoint missing, a zip exists without ``overwrite``,
            a teacher whose box form is unknown (pass ``segbox_form``).
    """
    from nnunet_ts.io.atomic import write_atomic

    folder = check_model_folder(Path(folder).resolve())
    zip_path = Path(zip_path)
    if zip_path.exists() and not overwrite:
        raise InputError(f"{zip_path} exists; pass --overwrite to replace it or choose another name")
    info = read_model_info(folder, raw_root)
    folds = tuple(str(f) for f in folds) if folds else trained_folds(folder, checkpoints[0])
    missing = [str(folder / f"fold_{f}" / c) for f in folds for c in checkpoints
               if not (folder / f"fold_{f}" / c).is_file()]
    if not folds or missing:
        raise InputError(f"model folder {folder}: {missing[0] if missing else 'no fold_*/' + checkpoints[0]} "
                         f"missing; finish training or pass the folds (-f) and checkpoints (-chk) it has")
    if segbox_form is not None and segbox_form not in SEGBOX_MODES:
        raise InputError(f"segbox form {segbox_form!r} must be one of {', '.join(SEGBOX_MODES)}")
    info = replace(info, segbox_form=segbox_form or info.segbox_form,
                   crop_lungs=bool(info.crop_lungs) if crop_lungs is None else crop_lungs,
                   crop_margin_mm=info.crop_margin_mm if crop_margin_mm is None else float(crop_margin_mm),
                   folds=folds, checkpoint=checkpoints[0], nnunet_ts_version=__version__, source=MODEL_INFO_FILE)
    if info.is_teacher and info.segbox_form is None:
        raise InputError(f"model {folder} reads a segbox channel but its box form is not recorded in "
                         f"dataset.json; pass --segbox-form ({', '.join(SEGBOX_MODES)}) as it was trained")

    base = folder.parent.parent
    files = [folder / n for n in ("plans.json", "dataset.json", "dataset_fingerprint.json")]
    for f in folds:
        fold = folder / f"fold_{f}"
        files += [fold / c for c in checkpoints]
        files += [p for p in (fold / "progress.png", fold / "debug.json", fold / "validation" / "summary.json")
                  if p.is_file()]
    files = [p for p in files if p.is_file()]

    def fill(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(base).as_posix())
            zf.writestr((folder / MODEL_INFO_FILE).relative_to(base).as_posix(),
                        json.dumps(info.to_json(), indent=1))

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(zip_path, fill)
    return info


def install_model(zip_path: str | Path, results_root: str | Path, overwrite: bool = False) -> list[Path]:
    """Extract a model zip (ours or nnU-Net's) into ``results_root``; returns the model folders installed.

    Raises:
        InputError: not a zip, a name escaping the target, no model folder inside, or a model folder
            already installed without ``overwrite`` (nothing is written then).
    """
    zip_path, results_root = Path(zip_path), Path(results_root)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{zip_path} is not a readable zip file ({exc}); export it again") from None
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for name in names:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or len(parts) < 2:
                raise InputError(f"{zip_path}: member {name!r} would land outside nnUNet_results; this is not "
                                 f"a model zip from nnunet_ts or nnU-Net")
        models = sorted({Path(*Path(n).parts[:2]) for n in names
                         if len(Path(n).parts) == 3 and Path(n).name == "plans.json"})
        if not models:
            raise InputError(f"{zip_path} holds no DatasetXXX_Name/<Trainer>__<Plans>__<config>/plans.json; "
                             f"it is not a model zip")
        existing = [str(results_root / m) for m in models if (results_root / m).exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} is already installed; pass --overwrite to replace it")
        results_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=results_root, prefix=".install.") as tmp:
            archive.extractall(tmp)
            for rel in {Path(Path(n).parts[0]) for n in names} - {m.parent for m in models}:
                # dataset-level extras (inference_information.json, ensembles/): merged in
                shutil.copytree(Path(tmp) / rel, results_root / rel, dirs_exist_ok=True)
            for m in models:
                target = results_root / m
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    shutil.rmtree(target)
                shutil.move(str(Path(tmp) / m), str(target))
            for d in {m.parent for m in models}:
                for extra in (Path(tmp) / d).iterdir():
                    shutil.copytree(extra, results_root / d / extra.name, dirs_exist_ok=True) \
                        if extra.is_dir() else shutil.copy2(extra, results_root / d / extra.name)
    return [results_root / m for m in models]
