"""Running the stock commands from tests: the environment a user's shell has, and one runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
NNUNET_ROOTS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# `nnunet_ts tiny-plans` options of every tiny model the tests train: seconds per training on 2 cores
TINY = "--patch 16 32 32 --epochs 2 --iterations 4 --val-iterations 2 --no-mirroring"

requires_nnunet = pytest.mark.skipif(shutil.which("nnUNetv2_train", path=str(BIN)) is None,
                                     reason="nnU-Net not installed")


def stock_env() -> dict:
    """This process's environment without any ``nnUNet_*`` variable, this venv's commands first on PATH,
    one nnU-Net worker process (the commands set their roots with ``eval "$(nnunet_ts env --root R)"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", nnUNet_def_n_proc="1")
    return env


def prefix(root: Path) -> str:
    """The shell prefix that points nnU-Net at ``root`` and our trainers, as the README tells users."""
    return f'eval "$(nnunet_ts env --root {root})" && '


def run(cmd: str, env: dict | None = None, **extra_env: str) -> str:
    """Runs ``cmd`` in bash; returns stdout; fails the test with the output's tail on a non-zero exit."""
    result = subprocess.run(["bash", "-c", cmd], env={**(env or stock_env()), **extra_env},
                            capture_output=True, text=True)
    assert result.returncode == 0, \
        f"{cmd}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    return result.stdout


def roots(root: Path) -> dict[str, str]:
    """The three nnU-Net folders under ``root``, as environment variables."""
    return {v: str(Path(root) / v) for v in NNUNET_ROOTS}


def set_roots(mp: pytest.MonkeyPatch, root: Path, create: bool = False) -> Path:
    """Points this process's nnU-Net at ``root`` (``monkeypatch.setenv``); returns ``root``."""
    for k, v in roots(root).items():
        mp.setenv(k, v)
        if create:
            Path(v).mkdir(parents=True, exist_ok=True)
    return Path(root)


# the message of the ``unloaded_model`` fixture's stand-in for predict's model loading (tests/conftest.py)
MODEL_LOAD_REACHED = "test: the model's network would load here"
