"""Typed argparse validators: a bad value is reported by argparse as one line, exit status 2."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A validator for integers in [minimum, maximum] (either bound optional)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} must be <= {maximum}")
        return value
    return parse


def real(lower: float = -math.inf, upper: float = math.inf, *, lower_open: bool = False,
         upper_open: bool = False) -> Callable[[str], float]:
    """A validator for finite numbers between lower and upper (each bound open or closed)."""
    interval = f"{'(' if lower_open else '['}{lower:g}, {upper:g}{')' if upper_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (value > lower if lower_open else value >= lower) and \
                 (value < upper if upper_open else value <= upper)
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"{text} must be a finite number in {interval}")
        return value
    return parse


positive_int = integer(1)
non_negative_int = integer(0)
fraction = real(0.0, 1.0, lower_open=True)                      # (0, 1]
open_fraction = real(0.0, 1.0, lower_open=True, upper_open=True)  # (0, 1)
non_negative = real(0.0)


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
