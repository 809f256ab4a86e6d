"""Small hand-made cases for tests that need files but not realistic anatomy.

Each case is a (z, y, x) = (16, 32, 32) int16 CT of lung-like -800 HU with one or two cube-shaped
"tumours" of +40 HU, so masks and boxes are known exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_ts.boxes.segbox import slice_rectangles
from nnunet_ts.io.boxes_file import save_rectangles
from nnunet_ts.io.images import Geometry, write_image
from nnunet_ts.io.manifest import CaseRecord, write_manifest

SHAPE = (16, 32, 32)
GEOMETRY = Geometry(shape_zyx=SHAPE, spacing=(1.5, 1.5, 3.0), origin=(-24.0, -24.0, -20.0),
                    direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def make_mask(index: int) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    z, y = 4 + index % 6, 6 + index % 10
    mask[z:z + 5, y:y + 8, 6:14] = 1
    if index % 2:
        mask[3:6, 20:24, 22:28] = 1  # a second lesion, apart from the first
    return mask


def make_ct(mask: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ct = rng.normal(-800, 20, SHAPE)
    ct[mask > 0] = rng.normal(40, 10, int(mask.sum()))
    return ct.astype(np.int16)


def write_cases(folder: Path, n_strong: int = 4, n_weak: int = 2, n_test: int = 0,
                geometry: Geometry = GEOMETRY) -> Path:
    """Write cases and ``cases.csv`` into ``folder``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    subsets = ["strong"] * n_strong + ["weak"] * n_weak + ["test"] * n_test
    for i, subset in enumerate(subsets):
        case_id = f"case_{i:03d}"
        mask = make_mask(i)
        ct_path, mask_path = folder / f"{case_id}_ct.nii.gz", folder / f"{case_id}_mask.nii.gz"
        boxes_path = folder / f"{case_id}_boxes.json"
        write_image(ct_path, make_ct(mask, i), geometry)
        write_image(mask_path, mask, geometry)
        save_rectangles(boxes_path, slice_rectangles(mask), SHAPE)
        # two scans per patient, so grouped splits matter
        records.append(CaseRecord(case_id, f"patient_{i // 2:03d}", subset, ct_path, mask_path, boxes_path))
    manifest = folder / "cases.csv"
    write_manifest(manifest, records)
    return manifest
