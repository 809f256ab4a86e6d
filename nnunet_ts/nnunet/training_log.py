"""Reading nnU-Net training logs (``fold_*/training_log_*.txt``).

``onset_epoch``: the first epoch whose pseudo Dice (nnU-Net's Dice on the validation patches of that
epoch) exceeds a threshold, i.e. when a network first finds the foreground. On scarce data this
varies a lot from one training to the next and explains much of the spread between runs.
"""
from __future__ import annotations

import re
from pathlib import Path

ONSET_DICE = 0.05
EPOCH_LINE = re.compile(r": Epoch (\d+)\s*$", re.MULTILINE)  # "<time>: Epoch 12"
# nnU-Net 2.x logs "Pseudo dice [np.float32(0.71)]" (numpy 2) or "Pseudo dice [0.71]" (numpy 1)
_PSEUDO_DICE = re.compile(r"Pseudo dice \[(?:np\.float\d+\()?([-+0-9.eE]+|nan)\)?[,\]]")


def onset_epoch(log_text: str, threshold: float = ONSET_DICE) -> int | None:
    """The first epoch (nnU-Net's 0-based numbering) whose pseudo Dice exceeds ``threshold``; None if none.

    With several foreground classes the first class decides. ``nan`` (no foreground in the patches) never counts.
    """
    epoch = None
    for line in log_text.splitlines():
        if (m := EPOCH_LINE.search(line)) is not None:
            epoch = int(m.group(1))
        elif (m := _PSEUDO_DICE.search(line)) is not None and m.group(1) != "nan" \
                and float(m.group(1)) > threshold:
            return epoch
    return None


def training_log_text(fold_folder: str | Path) -> str:
    """Every ``training_log_*.txt`` of a fold folder, oldest first (nnU-Net starts a new one on each
    resume, named by its start time); an empty string when there is none."""
    return "\n".join(log.read_text(errors="replace") for log in sorted(Path(fold_folder).glob("training_log_*.txt")))
