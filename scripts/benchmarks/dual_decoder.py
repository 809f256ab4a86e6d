"""Benchmark the dual-decoder student against the single-output student on the same plans and data.

Target: ``DualDecoderStudentTrainer`` takes <= 1.5 x ``TeacherStudentTrainer``'s seconds per training
iteration (a second decoder, its deep-supervision heads and the box loss). Peak memory is reported
alongside, without a target.

One run builds ``student.py``'s synthetic student dataset (spheres in noise; pseudo cases have soft
targets and annotated segboxes), plans it with stock nnU-Net, adds the tiny CPU configuration (or uses
``--configuration``) and, with ``nnunet_ts plan-dual``'s function, ``<configuration>_dual``, which
inherits it: both trainers get the same patch, batch, network and preprocessed data.

Every measurement runs in a fresh child process (so each has its own memory peak), interleaved round
by round, the order alternating (machines are noisy, so each round measures both). A child builds one
trainer, draws its batches beforehand, runs one untimed warm-up iteration, then ``--steps`` timed
``train_step`` calls (forward, loss, backward, step) with numpy and torch seeded alike for both
trainers, and reports:

* GFLOP per iteration: the matmuls and convolutions of one training iteration (forward and
  backward; ``torch.utils.flop_counter``), counted in the warm-up: the machine-independent cost;
* seconds per iteration: median of the steps; by default this process's CPU seconds
  (``--clock cpu``, robust on a shared machine), ``--clock wall`` on an idle machine or with CUDA;
* peak memory: the training peak RSS (the child's peak resident set during the iterations, warm-up
  included: Linux's ``VmHWM`` after resetting it through ``/proc/self/clear_refs`` once the trainer is
  built and the batches drawn; left out where the reset is not allowed), the process peak RSS (the
  whole child: imports, trainer, data and training; ``wait4``'s ``ru_maxrss``) and, with CUDA,
  ``torch.cuda.max_memory_allocated`` during the timed steps.

Medians over rounds are compared and the ratios printed. Nothing is asserted: timings belong here,
not in unit tests.

Run time: not recorded; about 5-10 minutes on 2 cores with the defaults (estimate: planning and
preprocessing 16 small cases, then 8 child processes, each importing torch and nnU-Net and building a
trainer).

Run it as a file (``python scripts/benchmarks/dual_decoder.py``, not ``-m``): it imports ``student.py`` from
its own folder, which Python puts first on the module search path of the script it runs.

Usage::

    python scripts/benchmarks/dual_decoder.py [--rounds 3] [--steps 3] [--strong 4] [--pseudo 12]
        [--shape 48 96 96] [--configuration 3d_tiny] [--device cpu] [--clock cpu] [--threads N]
        [--box-decoder-convs N|full] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import student as bench_student  # student.py in this folder: its dataset, plans and trainer set-up, not copied

from nnunet_ts.cli.plan_dual import box_decoder_convs  # torch-free, as plan-dual's --help
from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings

TIME_TARGET = 1.50
MEMORY = {"train_peak_mib": "training peak RSS", "peak_rss_mib": "process peak RSS",
          "cuda_peak_mib": "CUDA peak allocated"}  # result key: what it is
BASE = "TeacherStudentTrainer"
TWO_OUTPUT = ("DualDecoderStudentTrainer", "SunStudentTrainer")  # --trainer: the one compared with BASE


def _trainer_class(name: str):
    if name == BASE:
        from nnunet_ts.trainers.teacher_student_trainers import TeacherStudentTrainer
        return TeacherStudentTrainer
    if name == "SunStudentTrainer":
        from nnunet_ts.trainers.sun_student_trainers import SunStudentTrainer
        return SunStudentTrainer
    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer
    return DualDecoderStudentTrainer


def _peak_rss_mib() -> float:
    """This process's peak resident set since start or the last reset (Linux ``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the peak to the current resident set (Linux >= 4.0, ``clear_refs`` 5); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _child(args) -> None:
    """One measurement: build ``args.child``'s trainer, time ``args.steps`` iterations, print JSON."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    configuration = args.configuration + ("_dual" if args.child != BASE else "")
    bench_student._seed(args.seed)
    trainer = bench_student._trainer(_trainer_class(args.child), args.root, configuration, device)
    batches = [next(trainer.dataloader_train) for _ in range(args.steps + 1)]
    setup_peak = _peak_rss_mib()  # imports, trainer, batches; no training yet
    resettable = _reset_peak_rss()
    # warm-up: first-call allocations and kernel choices; it also counts the iteration's FLOPs
    # (forward + backward of every matmul and convolution), a figure no machine's load changes
    with FlopCounterMode(display=False) as flop_counter:
        trainer.train_step(batches[0])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for batch in batches[1:]:
        sync()
        start = clock()
        trainer.train_step(batch)
        sync()
        times.append(clock() - start)
    train_peak = _peak_rss_mib() if resettable else None
    cm = trainer.configuration_manager
    print(json.dumps({
        "seconds": statistics.median(times), "gflop": flop_counter.get_total_flops() / 1e9,
        "patch": list(cm.patch_size), "batch": cm.batch_size,
        "threads": torch.get_num_threads(), "box_loss_weight": getattr(trainer, "box_loss_weight", None),
        "setup_peak_mib": setup_peak, "train_peak_mib": train_peak,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None,
    }))


def _measure(name: str, root: Path, args, seed: int) -> dict:
    """Run one child; its JSON line plus its peak resident set (MiB) from wait4."""
    cmd = [sys.executable, __file__, "--child", name, "--root", str(root), "--seed", str(seed),
           "--steps", str(args.steps), "--configuration", args.configuration, "--device", args.device,
           "--clock", args.clock, "--threads", str(args.threads)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child itself: its own rusage, not all children's
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if code != 0:
            sys.exit(f"{name} measurement failed (exit {code}):\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    # wait4 sees the peak since the child's reset: the whole child's peak is the larger of the two
    result["peak_rss_mib"] = max(result["setup_peak_mib"], usage.ru_maxrss / 1024)  # Linux: KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are compared)")
    parser.add_argument("--steps", type=int, default=3, help="timed training iterations per measurement")
    parser.add_argument("--strong", type=int, default=4, help="strong cases")
    parser.add_argument("--pseudo", type=int, default=12, help="pseudo cases (soft targets + annotated segboxes)")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 96, 96), metavar=("Z", "Y", "X"))
    parser.add_argument("--configuration", default="3d_tiny",
                        help="3d_tiny (added: 8..64 features, patch 32x64x64) or 3d_fullres; the dual "
                             "student trains <configuration>_dual, which inherits it")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: CPU seconds of the measuring process (robust when other jobs share the "
                             "machine); wall: elapsed seconds (idle machine, --device cuda)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per measurement (0: torch's default); 1 gives the steadiest CPU "
                             "seconds on a busy machine, where idle threads spin and bill CPU time")
    parser.add_argument("--box-decoder-convs", type=box_decoder_convs, default=DualDecoderSettings().box_decoder_convs,
                        metavar="N|full", help="convolutions per box-decoder stage (default: plan-dual's); "
                                               "full: as the segmentation decoder (the paper's)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--trainer", choices=TWO_OUTPUT, default=TWO_OUTPUT[0],
                        help="the two-output student compared with the single-output one")
    parser.add_argument("--child", choices=(BASE, *TWO_OUTPUT), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or args.keep or Path(tmp)
        for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            os.environ[v] = str(root / v)  # inherited by the children
            (root / v).mkdir(parents=True, exist_ok=True)
        os.environ["nnUNet_n_proc_DA"] = "0"
        if args.child:
            return _child(args)

        from nnunet_ts.planners.dual_decoder_plans import add_dual_decoder_configuration

        plans_file = root / "nnUNet_preprocessed" / f"Dataset{bench_student.DATASET_ID}_{bench_student.NAME}" \
            / "nnUNetPlans.json"
        if not plans_file.is_file():
            print(f"preparing {args.strong} strong + {args.pseudo} pseudo cases of {tuple(args.shape)} voxels ...")
            bench_student._prepare(root, args)
        add_dual_decoder_configuration(plans_file, args.configuration, overwrite=True,
                                       settings=DualDecoderSettings(box_decoder_convs=args.box_decoder_convs))

        # round 0 also makes the segbox targets (the first dual child); it runs again as round 1 so
        # that no compared measurement pays for it
        ours = args.trainer
        results = {BASE: [], ours: []}
        for r in range(args.rounds + 1):
            order = [BASE, ours] if r % 2 == 0 else [ours, BASE]
            for name in order:
                result = _measure(name, root, args, seed=1000 + r)
                if r > 0:
                    results[name].append(result)
                print(f"round {r}{' (warm-up, not compared)' if r == 0 else ''}: {name:26s} "
                      f"{result['seconds']:.3f} s/it, " + ", ".join(
                          f"{label} {result[key]:.0f} MiB" for key, label in MEMORY.items() if result[key] is not None),
                      flush=True)

    keys = ["seconds", *(k for k in MEMORY if all(r[k] is not None for rs in results.values() for r in rs))]
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in results.items()}
    first = results[ours][0]
    print(f"\nconfiguration {args.configuration} (dual: {args.configuration}_dual, "
          f"lambda {first['box_loss_weight']:g}, box decoder convolutions per stage "
          f"{args.box_decoder_convs or 'as the segmentation decoder (full)'}): "
          f"patch {first['patch']}, batch {first['batch']}, device {args.device}, {first['threads']} threads, "
          f"{args.rounds} interleaved rounds x {args.steps} steps (medians), {args.clock} seconds")
    print(f"{'':28s}{'s / iteration':>15s}" + "".join(f"{MEMORY[k] + ' MiB':>24s}" for k in keys[1:]))
    for name in (BASE, ours):
        print(f"{name:28s}{med[name]['seconds']:15.3f}" + "".join(f"{med[name][k]:24.0f}" for k in keys[1:]))
    time_ratio = med[ours]["seconds"] / med[BASE]["seconds"]
    print(f"\ntraining iteration time ratio (dual / single-output student): {time_ratio:.2f}  "
          f"(target <= {TIME_TARGET:.2f}: {'met' if time_ratio <= TIME_TARGET else 'NOT met'})")
    gflop = {name: results[name][0]["gflop"] for name in (BASE, ours)}
    print(f"training iteration GFLOP (matmuls and convolutions, forward + backward): "
          f"{gflop[BASE]:.1f} vs {gflop[ours]:.1f}, ratio {gflop[ours] / gflop[BASE]:.2f} "
          f"(the same on any device: where convolutions dominate, the time ratio approaches it)")
    for k in keys[1:]:
        print(f"peak memory ratio, {MEMORY[k]} (dual / single-output student): {med[ours][k] / med[BASE][k]:.2f}")


if __name__ == "__main__":
    main()
