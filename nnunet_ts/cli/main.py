"""The ``nnunet_ts`` command: what stock nnU-Net lacks for teacher-student training.

Each subcommand is a module in this package with ``register(subparsers, name, help)``: it adds its
parser and sets ``func`` (a callable taking the parsed args and returning an exit status).
Subcommand modules import only light modules at top level (numpy, argparse); torch and nnU-Net are
imported inside ``func`` so ``nnunet_ts --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from nnunet_ts import __version__
from nnunet_ts.errors import InputError

# (name, module, one-line help). Order is the order shown in --help.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("env", "nnunet_ts.cli.env", "print shell lines that let nnUNetv2_* commands find our trainers"),
    ("synth", "nnunet_ts.cli.synth", "generate synthetic thorax CTs with tumours, masks and boxes"),
    ("dataset", "nnunet_ts.cli.dataset", "write nnU-Net raw datasets (teacher, student, weak)"),
    ("plan-teacher", "nnunet_ts.cli.plan_teacher", "plan and preprocess a teacher dataset, segbox channel kept binary"),
    ("restrict-to-box", "nnunet_ts.cli.restrict_to_box",
     "set a teacher's predictions outside the dilated segbox to background"),
    ("soft-targets", "nnunet_ts.cli.soft_targets",
     "preprocess a student dataset's soft targets (teacher probabilities)"),
    ("pseudolabel", "nnunet_ts.cli.pseudolabel",
     "run a trained teacher on the weak set and write a student dataset of soft targets"),
    ("plan-dual", "nnunet_ts.cli.plan_dual",
     "add the dual-decoder student's configuration (lambda, segbox form) to a dataset's plans"),
    ("tiny-plans", "nnunet_ts.cli.tiny_plans", "add a tiny CPU-sized configuration to a dataset's plans"),
    ("budget-config", "nnunet_ts.cli.budget_config",
     "add a configuration with training settings (budget, Dice smooth ...) to a dataset's plans"),
    ("evaluate", "nnunet_ts.cli.evaluate", "DSC, DSC-TP and lesion-level F1 of predictions vs ground truth"),
    ("convert", "nnunet_ts.cli.convert", "convert MSD Lung, NSCLC-Radiomics or Lung-PET-CT-Dx into nnU-Net datasets"),
    ("predict", "nnunet_ts.cli.predict",
     "segment lung tumours in CTs (NIfTI, DICOM, folders) with a trained model; masks, DICOM-SEG, RTSTRUCT, lesions"),
    ("model", "nnunet_ts.cli.model", "export a trained model as one zip, install one, show its record"),
    ("demo", "nnunet_ts.cli.demo", "the paper's experiment end to end (synthetic or real cohort) with a report"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet_ts",
        description="Teacher-student lung-tumour segmentation from mixed supervision "
                    "(few voxel masks, many boxes) on nnU-Net v2. Training and prediction use the "
                    "stock nnUNetv2_* commands; run `eval \"$(nnunet_ts env)\"` first so they find "
                    "our trainers.",
    )
    parser.add_argument("--version", action="version", version=f"nnunet_ts {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in SUBCOMMANDS:
        importlib.import_module(module).register(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"nnunet_ts {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nnunet_ts {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
