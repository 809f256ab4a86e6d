"""Typed argparse validators: a bad value is reported by argparse as one line, exit status 2."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def dataset_id(text: str) -> int:
    """An nnU-Net dataset id: 1-999 (``Dataset501_Name`` style names are accepted too)."""
    digits = text[len("Dataset"):].split("_")[0] if text.startswith("Dataset") else text
    try:
        value = int(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dataset id (an integer 1-999)") from None
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"dataset id {value} must be from 1 to 999")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1]")
    return value
