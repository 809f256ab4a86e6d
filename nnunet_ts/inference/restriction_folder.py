"""Box restriction applied to a whole nnUNetv2_predict output folder (see nnunet_ts.boxes.restriction)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError


def restrict_prediction_folder(pred_dir: str | Path, images_dir: str | Path, out_dir: str | Path, *,
                               margin_mm: float, box_channel: int = 1, file_ending: str = ".nii.gz",
                               overwrite: bool = False, progress: bool = True) -> list[str]:
    """Write ``out_dir`` with every prediction of ``pred_dir`` restricted to its dilated segbox.

    Per case: ``<case><file_ending>`` (label map) restricted; ``<case>.npz`` (class probabilities,
    (C, z, y, x), when present) restricted; ``<case>.pkl`` copied. The segbox is
    ``images_dir/<case>_<box_channel:04d><file_ending>``. Returns the case ids written.

    Raises:
        InputError: no predictions, a missing or off-grid segbox, an existing ``out_dir`` without
            ``overwrite``. Nothing is written to ``out_dir`` then.
    """
    from tqdm import tqdm

    from nnunet_ts.boxes.restriction import box_region, restrict_labels, restrict_probabilities
    from nnunet_ts.datasets.resume import WorkFolder, file_signature
    from nnunet_ts.io.images import check_same_geometry, read_image, write_image

    pred_dir, images_dir, out_dir = Path(pred_dir), Path(images_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir} exists; pass --overwrite to replace it or choose another --out")
    cases = sorted(p.name[:-len(file_ending)] for p in pred_dir.glob(f"*{file_ending}"))
    if not cases:
        raise InputError(f"no predictions (*{file_ending}) in {pred_dir}; point --pred at an "
                         f"nnUNetv2_predict output folder")
    boxes = {c: images_dir / f"{c}_{box_channel:04d}{file_ending}" for c in cases}
    missing = [str(p) for p in boxes.values() if not p.is_file()]
    if missing:
        raise InputError(f"segbox file {missing[0]} missing ({len(missing)} case(s) without one); "
                         f"--images must be the folder the predictions were made from, and "
                         f"--box-channel the segbox's channel index")

    work = WorkFolder(out_dir, {"pred": str(pred_dir.resolve()), "images": str(images_dir.resolve()),
                                "margin_mm": margin_mm, "box_channel": box_channel,
                                "inputs": {c: file_signature(boxes[c]) for c in cases}})
    # An error leaves the work folder with the cases finished so far: a rerun resumes there.
    for case in tqdm(cases, desc="restrict-to-box", unit="case", disable=not progress):
        if case in work.done:
            continue
        labels, geometry = read_image(pred_dir / f"{case}{file_ending}", "prediction")
        segbox, box_geometry = read_image(boxes[case], "segbox")
        check_same_geometry(geometry, pred_dir / f"{case}{file_ending}", box_geometry, boxes[case])
        region = box_region(segbox, geometry.spacing_zyx, margin_mm)
        write_image(work.path / f"{case}{file_ending}", restrict_labels(labels, region), geometry)
        npz = pred_dir / f"{case}.npz"
        if npz.is_file():
            probabilities = np.load(npz)["probabilities"]
            np.savez_compressed(work.path / f"{case}.npz",
                                probabilities=restrict_probabilities(probabilities, region))
        if (pred_dir / f"{case}.pkl").is_file():
            shutil.copy2(pred_dir / f"{case}.pkl", work.path / f"{case}.pkl")
        work.mark_done(case, {"box_voxels": int((segbox > 0.5).sum()),
                              "region_voxels": int(region.sum())})
    work.finish()
    return cases
