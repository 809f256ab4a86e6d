"""Benchmark the synthetic CT generator: 100 cases of 96 x 128 x 128 voxels, target < 60 s.

Two timings, both wall-clock with a process pool (all CPUs by default):

1. generation: ``generate_case`` for every case, arrays discarded (pool start-up included);
2. cohort: ``write_cohort``, i.e. generation plus writing NIfTI CT + mask, boxes and manifest.
   Writing = cohort - generation.

Run time: not recorded; the target is under a minute for the generation, so about 1-3 minutes on 2 cores
with the writing (estimate).

Usage::

    python scripts/benchmarks/synth.py [--cases 100] [--shape 96 128 128] [--workers N] [--no-write]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TARGET_S = 60.0


def _generate(args: tuple[int, tuple[int, int, int]]) -> int:
    from nnunet_ts.synth import SynthConfig, generate_case

    seed, shape = args
    return len(generate_case(seed, SynthConfig.compact(shape)).lesions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 128, 128), metavar=("Z", "Y", "X"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-write", action="store_true", help="skip the cohort (writing) timing")
    args = parser.parse_args()
    shape = tuple(args.shape)
    print(f"{args.cases} cases of {shape[0]} x {shape[1]} x {shape[2]} voxels, {args.workers} worker(s)")

    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        lesions = list(pool.map(_generate, [(seed, shape) for seed in range(args.cases)]))
    generation = time.perf_counter() - start
    print(f"generation: {generation:6.1f} s  {args.cases / generation:5.2f} cases/s  "
          f"{generation / TARGET_S:.2f} x the {TARGET_S:.0f} s target  "
          f"({sum(lesions)} tumours, {sum(n > 0 for n in lesions)} cases with >= 1)")
    if args.no_write:
        return

    from nnunet_ts.synth import SynthConfig, write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_cohort(Path(tmp) / "cohort", args.cases, 0, 0, seed=0, config=SynthConfig.compact(shape),
                     workers=args.workers, progress=False)
        cohort = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "cohort").iterdir()) / 2 ** 20
    print(f"cohort:     {cohort:6.1f} s  {args.cases / cohort:5.2f} cases/s  "
          f"(writing ~{max(cohort - generation, 0.0):.1f} s, {size_mb:.0f} MiB on disk)")


if __name__ == "__main__":
    main()
