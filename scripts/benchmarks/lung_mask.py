"""Benchmark the classical lung mask (the fallback without lungmask's weights) on clinical geometries.

For each seed, a synthetic chest CT (neck to upper abdomen, 64 x 112 x 112, 2-3 tumours of 20-60 mm
mostly against the chest wall or the mediastinum) is reshaped the way clinical series come
(``tests/factories/lung_geometries.py``, the same cases tests/test_lung_mask.py asserts on: tight
fields of view through the lungs, apex or bases only, one lung, stomach and bowel gas) and
``classical_lung_mask`` is run on it. Printed per geometry and seed:

* Dice of the mask (both labels) against the generator's lungs (tumours, vessels and bronchi inside
  them included);
* the sides found against the true ones;
* the share of tumour voxels inside the crops ``--crop-lungs`` makes (``plan_crops``, 10 mm margin)
  and inside the mask itself;
* the seconds the mask took (one process).

Run time: about 15 s on 2 cores for 3 seeds, 1 minute for 10.

Usage::

    python scripts/benchmarks/lung_mask.py [--seeds 0 1 2]   (tests/test_lung_mask.py asserts seeds 0 1 2)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# The geometries are the tests' own (so the table shows what the tests assert); they live with the
# test factories, importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def measure(scan) -> dict:
    from nnunet_ts.datasets.lung_crop import LungMask, paste_back, plan_crops
    from nnunet_ts.datasets.lung_mask import classical_lung_mask

    g = scan.geometry
    start = time.perf_counter()
    labels = classical_lung_mask(scan.ct, g.direction, g.spacing, g.origin)
    seconds = time.perf_counter() - start
    found = labels > 0
    plan = plan_crops(LungMask(labels, "classical"), g, margin_mm=10.0)
    covered = paste_back([np.ones(c.shape_zyx, np.uint8) for c in plan.crops], plan) > 0
    tumour = scan.mask > 0
    return {"dice": 2.0 * (found & scan.lungs).sum() / (found.sum() + scan.lungs.sum()),
            "sides": tuple(c.side for c in plan.crops), "true_sides": scan.sides,
            "in_crops": covered[tumour].mean() if tumour.any() else None,
            "in_mask": found[tumour].mean() if tumour.any() else None, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    from tests.factories.lung_geometries import GEOMETRIES, make_scans

    rows = {name: [] for name in GEOMETRIES}
    for seed in args.seeds:
        for scan in make_scans(seed):
            rows[scan.name].append(measure(scan))
    print(f"seeds {' '.join(map(str, args.seeds))}; Dice per seed in the order of the seeds\n")
    print("| geometry | Dice min | Dice mean | Dice per seed | sides right | tumour voxels in crops (min) "
          "| tumour voxels in mask (mean) | s per mask |")
    print("|---|---|---|---|---|---|---|---|")
    for name, results in rows.items():
        dices = [r["dice"] for r in results]
        sides_ok = sum(r["sides"] == r["true_sides"] for r in results)
        with_tumour = [r for r in results if r["in_crops"] is not None]   # a partial scan may show none
        crops = f"{min(r['in_crops'] for r in with_tumour):.1%}" if with_tumour else "no tumour"
        mask = f"{np.mean([r['in_mask'] for r in with_tumour]):.0%}" if with_tumour else "no tumour"
        print(f"| {name} | {min(dices):.3f} | {np.mean(dices):.3f} | {' '.join(f'{d:.3f}' for d in dices)} "
              f"| {sides_ok}/{len(results)} | {crops} ({len(with_tumour)} scans) | {mask} "
              f"| {np.mean([r['seconds'] for r in results]):.2f} |")

if __name__ == "__main__":
    main()
