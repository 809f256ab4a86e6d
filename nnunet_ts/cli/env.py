"""``nnunet_ts env``: shell lines that make the stock nnU-Net commands find our trainers."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter

ROOT_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def env_lines(root: Path | None = None, current_ext: str | None = None) -> list[str]:
    """``export`` lines for a POSIX shell.

    ``nnUNet_extTrainer`` gets our trainer folder prepended to what is already set (once), so other
    plugins keep working. With ``root``, the three nnU-Net folders are set to ``root/<variable>``.
    """
    from nnunet_ts.nnunet.paths import with_our_trainers

    lines = [f"export nnUNet_extTrainer={shlex.quote(with_our_trainers(current_ext))}"]
    if root is not None:
        root = Path(root).resolve()
        lines += [f"export {v}={shlex.quote(str(root / v))}" for v in ROOT_VARIABLES]
    return lines


def run(args: argparse.Namespace) -> int:
    if args.root is not None:
        for v in ROOT_VARIABLES:
            (Path(args.root) / v).mkdir(parents=True, exist_ok=True)
    print("\n".join(env_lines(args.root, os.environ.get("nnUNet_extTrainer"))))
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Print shell `export` lines so that nnUNetv2_train / nnUNetv2_predict find the "
                    "nnunet_ts trainers (through nnU-Net's nnUNet_extTrainer variable).",
        epilog="examples:\n"
               "  eval \"$(nnunet_ts env)\"\n"
               "  nnUNetv2_train 501 3d_fullres 0 -tr TeacherStudentTrainer\n\n"
               "  eval \"$(nnunet_ts env --root ~/nnunet_data)\"   # also set nnUNet_raw/_preprocessed/_results")
    p.add_argument("--root", type=Path, default=None,
                   help="also export nnUNet_raw, nnUNet_preprocessed and nnUNet_results as "
                        "subfolders of ROOT (created if missing)")
    p.set_defaults(func=run)
