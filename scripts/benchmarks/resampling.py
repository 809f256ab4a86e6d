"""nnU-Net's resampling with the channels in threads against nnU-Net's own, in a whole-volume prediction.

Loads the box teacher that ``scripts/benchmarks/pseudolabel.py OUT`` trained, the way ``nnunet_ts predict``
loads a model (``inference.predict.load_predictor``, which installs ``ThreadedResampling``), and predicts
whole clinical-size weak CTs of that run (CT + segbox) with nnU-Net's ``predict_single_npy_array``, in
rounds of the stock configuration manager and the threaded one on the same loaded predictor (which
runs first alternates from round to round).
Prints seconds per prediction, the stock / threaded ratio per round and whether the two probability maps
are identical.

Run time: about 4 minutes per round on 2 cores for one 200 x 512 x 512 case.

    python scripts/benchmarks/resampling.py OUT [--case 2] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder of a finished scripts/benchmarks/pseudolabel.py run")
    ap.add_argument("--case", type=int, default=2, help="which weak case (sorted), default the third")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from nnunet_ts.inference.predict import PredictOptions, load_predictor, tumour_probability
    from nnunet_ts.io.images import read_image

    models = sorted(args.out.glob("nnUNet_results/Dataset801_*/BoxTeacherTrainer__nnUNetPlans__bench_teacher"))
    cts = sorted(args.out.glob("nnUNet_raw/Dataset803_*/imagesTs/*_0000.nii.gz"))
    if not models or len(cts) <= args.case:
        raise SystemExit(f"{args.out}: no finished scripts/benchmarks/pseudolabel.py run (teacher and weak cases)")
    ct, geometry = read_image(cts[args.case], "CT")
    segbox, _ = read_image(Path(str(cts[args.case]).replace("_0000.nii.gz", "_0001.nii.gz")), "segbox")
    predictor = load_predictor(models[0], PredictOptions(folds=["0"], device="cpu"), teacher=True)
    threaded = predictor.configuration_manager
    variants = {"stock": threaded._wrapped, "threaded": threaded}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    maps = {}
    print(f"{cts[args.case].name}: {ct.shape} voxels, spacing (z, y, x) {geometry.spacing_zyx}", flush=True)
    for r in range(args.rounds):
        for name in list(variants)[::1 if r % 2 == 0 else -1]:  # alternate which runs first
            manager = variants[name]
            predictor.configuration_manager = manager
            t0 = time.perf_counter()
            maps[name] = tumour_probability(predictor, [ct, segbox], geometry.spacing_zyx)
            seconds[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}: stock {seconds['stock'][-1]:.1f} s, threaded {seconds['threaded'][-1]:.1f} s, "
              f"{seconds['stock'][-1] / seconds['threaded'][-1]:.2f}x", flush=True)
    ratios = [s / t for s, t in zip(seconds["stock"], seconds["threaded"])]
    print(f"median stock / threaded {statistics.median(ratios):.2f}x over {args.rounds} round(s); "
          f"probability maps identical: {bool(np.array_equal(maps['stock'], maps['threaded']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
