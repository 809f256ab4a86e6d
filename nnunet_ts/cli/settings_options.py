"""Command-line options for a configuration's training settings (``planners.training_settings``)."""
from __future__ import annotations

import argparse

from nnunet_ts.cli.validators import integer, positive_int


def add_settings_arguments(p: argparse.ArgumentParser, budget_required: bool, mirroring_default: bool,
                           final_validation_default: str) -> None:
    """Adds --epochs/--iterations/--val-iterations, --dice-smooth, --mirroring, sampling, --final-validation
    and --cpu-precision."""
    from nnunet_ts.planners.training_settings import CPU_PRECISIONS, FINAL_VALIDATION

    g = p.add_argument_group("training settings (read by every nnunet_ts trainer)")
    g.add_argument("--epochs", required=budget_required, type=positive_int, default=None, help="training epochs")
    g.add_argument("--iterations", required=budget_required, type=positive_int, default=None,
                   help="training iterations per epoch")
    g.add_argument("--val-iterations", type=positive_int, default=2, help="validation iterations per epoch")
    g.add_argument("--dice-smooth", type=float, default=None,
                   help="the Dice's smooth (nnU-Net: 1e-5; 0 = nnU-Net's noSmooth loss)")
    g.add_argument("--mirroring", action=argparse.BooleanOptionalAction, default=mirroring_default,
                   help="mirroring augmentation and mirrored inference passes")
    g.add_argument("--foreground-sampling", type=float, default=None,
                   help="fraction of patches centred on tumour (nnU-Net: 0.33; teachers: 0.9)")
    g.add_argument("--box-perturbation", type=float, default=None,
                   help="box teacher: probability of reader-like box perturbation per sample (default 0.5; "
                        "0 = exact boxes)")
    g.add_argument("--strong-fraction", type=float, default=None,
                   help="students: share of strong cases per draw (default: the plain union)")
    g.add_argument("--final-validation", choices=FINAL_VALIDATION, default=final_validation_default,
                   help="nnU-Net's validation after training")
    g.add_argument("--cpu-precision", choices=CPU_PRECISIONS, default="auto",
                   help="CPU forward passes: auto (default) = bf16 where the CPU has native bf16 instructions "
                        "(about 2x faster), float32 elsewhere; bf16; fp32 (the environment variable "
                        "NNUNET_TS_PRECISION overrides it)")
    g.add_argument("--seed", type=integer(0), default=None,
                   help="training seed: a CPU training repeats exactly (default: unseeded, as nnU-Net)")


def settings_from_args(args: argparse.Namespace):
    """The ``TrainingSettings`` the options ask for; None when no option differs from the defaults."""
    from nnunet_ts.planners.training_settings import TrainingSettings

    if (args.epochs is None) != (args.iterations is None):
        from nnunet_ts.errors import InputError
        raise InputError("give --epochs and --iterations together (the training budget)")
    budget = None if args.epochs is None else (args.epochs, args.iterations, args.val_iterations)
    settings = TrainingSettings(budget=budget, mirroring=args.mirroring, final_validation=args.final_validation,
                                dice_smooth=args.dice_smooth, foreground_sampling=args.foreground_sampling,
                                box_perturbation=args.box_perturbation, strong_fraction=args.strong_fraction,
                                cpu_precision=args.cpu_precision, seed=args.seed)
    return settings.check("the command line") if settings != TrainingSettings() else None
