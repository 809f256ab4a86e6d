"""Benchmark the whole-file check every image read makes (``nnunet_ts.io.image_files``).

Writes a CT-like int16 volume (body ellipse of 40 HU in -1000 HU air, Gaussian noise of 20 HU) of
``--shape`` (z, y, x) as ``.nii.gz``, ``.nii``, ``.mha`` (zlib) and ``.nrrd`` (gzip), then times,
median of ``--repeats``, single process: SimpleITK's own ``ReadImage``, the check
(``verify_image_file``, which inflates with ISA-L; its memory of files already checked cleared before
each run), the same check inflating with Python's ``zlib`` for reference, and the SHA-256 that keys
resumed work (``datasets.resume.file_signature``). Prints a Markdown table.

Run time: about a minute on 2 cores for the default 300 x 512 x 512.

Usage::

    python scripts/benchmarks/image_check.py [--shape 300 512 512] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import zlib

    import SimpleITK as sitk

    from nnunet_ts.datasets.resume import _sha256
    from nnunet_ts.io import image_files

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    nz, ny, nx = args.shape
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:ny, 0:nx]
    body = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.47 * nx)) ** 2 < 1
    ct = (np.where(body, 40, -1000)[None] + rng.normal(0, 20, (nz, ny, nx))).astype(np.int16)
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((0.7, 0.7, 1.0))
    def check(path: Path, inflater) -> None:
        image_files._VERIFIED.clear()  # time the check itself, not the memory of checked files
        stock, image_files.isal_zlib = image_files.isal_zlib, inflater
        try:
            image_files.verify_image_file(path)
        finally:
            image_files.isal_zlib = stock

    isal = image_files.isal_zlib
    print("| file | size | SimpleITK read | check (ISA-L) | check (Python zlib) | zlib / ISA-L | SHA-256 |\n"
          "|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, compressed in (("ct.nii.gz", True), ("ct.nii", False), ("ct.mha", True), ("ct.nrrd", True)):
            path = Path(tmp) / name
            sitk.WriteImage(image, str(path), useCompression=compressed)
            read = _median_seconds(lambda p=path: sitk.ReadImage(str(p)), args.repeats)
            fast = _median_seconds(lambda p=path: check(p, isal), args.repeats)
            slow = _median_seconds(lambda p=path: check(p, zlib), args.repeats)
            digest = _median_seconds(lambda p=path: _sha256.__wrapped__(str(p), 0, 0, 0, 0), args.repeats)
            ratio = f"{slow / fast:.1f}x" if fast > 0.005 else "-"
            print(f"| `{name}` | {path.stat().st_size / 1e6:.0f} MB | {read:.2f} s | {fast:.2f} s | {slow:.2f} s | "
                  f"{ratio} | {digest:.2f} s |")


if __name__ == "__main__":
    main()
