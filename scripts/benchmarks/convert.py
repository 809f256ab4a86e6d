"""Benchmark NSCLC-Radiomics-style conversion per patient and lung cropping per case.

Writes ``--patients`` synthetic patients as DICOM (a CT series of 512 x 512 x 80 by default, from
the clinical synthetic preset, shuffled file names, rescale intercept -1024) plus an RTSTRUCT whose
GTV-1 contours are the tumour mask's outlines (scikit-image ``find_contours``), then times, each
wall-clock and single process:

1. conversion: ``convert_patient`` of ``dataset_conversion.nsclc`` (header scan, CT reading,
   contour rasterisation, writing CT + mask NIfTI + boxes), per patient, series discovery included;
2. lung cropping: lung mask (lungmask R231 if its weights are found, else the classical mask;
   the method is printed) + crop plan + cropping CT and mask, per case.

The DICOM is written by the synthetic data's DICOM export (``nnunet_ts.synth.dicom_export``).

Run time: not recorded; a few minutes on 2 cores (estimate), more with lungmask.

Usage::

    python scripts/benchmarks/convert.py [--patients 2] [--shape 80 512 512]
        [--lungmask-weights PATH | --lungmask-random]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_patient(folder: Path, seed: int, shape: tuple[int, int, int]) -> None:
    from skimage.measure import find_contours

    from nnunet_ts.synth import SynthConfig, generate_case
    from nnunet_ts.synth.dicom_export import SeriesSpec, write_rtstruct, write_series

    case = generate_case(seed, SynthConfig.clinical(shape, tumour_count_probs=(0.0, 0.6, 0.4, 0.0)))
    spec = SeriesSpec(hu=case.ct.astype(float), spacing=case.geometry.spacing, origin=case.geometry.origin,
                      direction=np.eye(3), slope=1.0, intercept=-1024.0, patient_id=f"LUNG1-{seed:03d}")
    ct = write_series(folder / "ct", spec, np.random.default_rng(seed))
    contours = []
    for z in np.flatnonzero(case.mask.any(axis=(1, 2))):
        for outline in find_contours(np.pad(case.mask[z], 1).astype(float), 0.5):
            rows, cols = outline[:, 0] - 1, outline[:, 1] - 1
            contours.append((int(z), np.array([spec.point((c, r, z)) for r, c in zip(rows, cols, strict=True)])))
    write_rtstruct(folder / "rt" / "1-1.dcm", ct, spec, {"GTV-1": contours})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(80, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--lungmask-weights", default=None, help="R231 state dict (default: lungmask's cache)")
    parser.add_argument("--lungmask-random", action="store_true",
                        help="time the lungmask path with randomly initialised R231 weights (same cost as the "
                             "real ones; the crops are meaningless)")
    args = parser.parse_args()
    shape = tuple(args.shape)

    import SimpleITK as sitk

    from nnunet_ts.dataset_conversion.nsclc import convert_patient, group_by_patient
    from nnunet_ts.datasets.lung_crop import crop_array, plan_for_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        for p in range(args.patients):
            write_patient(tmp / "src" / f"LUNG1-{p:03d}", p, shape)
        print(f"wrote {args.patients} DICOM patient(s) of {shape[0]} x {shape[1]} x {shape[2]} in "
              f"{time.perf_counter() - start:.1f} s (not timed below)")

        out = tmp / "cohort"
        out.mkdir()
        conversion = []
        for p in range(args.patients):
            start = time.perf_counter()
            [(_, item)] = group_by_patient(tmp / "src" / f"LUNG1-{p:03d}", progress=False)
            results = convert_patient(item, out)
            conversion.append(time.perf_counter() - start)
            assert results and results[0].mask, results
        print(f"NSCLC-like conversion: {np.mean(conversion):6.2f} s/patient "
              f"(min {min(conversion):.2f}, max {max(conversion):.2f}, n={len(conversion)})")

        import torch  # imported before timing: lungmask_weights() asks torch for lungmask's cache

        weights = args.lungmask_weights
        if args.lungmask_random:
            from lungmask.resunet import UNet

            weights = str(tmp / "r231_random.pth")
            torch.save(UNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True,
                            residual=False).state_dict(), weights)
        cropping, method = [], None
        for ct_file in sorted(out.glob("*_ct.nii.gz")):
            image = sitk.ReadImage(str(ct_file))
            mask = sitk.GetArrayViewFromImage(sitk.ReadImage(str(ct_file).replace("_ct.", "_mask.")))
            start = time.perf_counter()
            plan = plan_for_image(image, weights)
            hu = sitk.GetArrayViewFromImage(image)
            for crop in plan.crops:
                crop_array(hu, crop), crop_array(mask, crop)
            cropping.append(time.perf_counter() - start)
            method = plan.method
            sizes = ", ".join(f"{c.side} {c.shape_zyx}" for c in plan.crops)
            print(f"  {ct_file.name}: crops {sizes}")
        print(f"lung cropping ({method}): {np.mean(cropping):6.2f} s/case "
              f"(min {min(cropping):.2f}, max {max(cropping):.2f}, n={len(cropping)})")


if __name__ == "__main__":
    main()
