"""Run the stock commands of a pipeline step by step, as a user would type them.

Experiment runners (``nnunet_ts demo``, ``scripts/experiments/teacher_experiment.py``) do their work through the
``nnUNetv2_*`` and ``nnunet_ts`` commands so that every printed line reproduces one step. This module
holds what they share: the environment (nnU-Net folders under one root, our trainers found through
``nnUNet_extTrainer``, CPU-friendly worker counts) and a runner that prints each command, writes its
output to a log file, shows training epochs as a progress bar and says where the log is on failure.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import EXT_TRAINER, with_our_trainers
from nnunet_ts.nnunet.training_log import EPOCH_LINE as _EPOCH

ROOT_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# nnU-Net 2.8.1's planner calls torch.set_num_threads(nnUNet_n_proc_DA) and crashes on 0: this CPU
# training setting is given to nnUNetv2_train only.
TRAINING_ONLY = ("nnUNet_n_proc_DA",)


def nnunet_environment(root: Path, device: str = "cpu", num_processes: int = 1,
                       extra_trainer_dirs: Sequence[Path] = (), base: dict | None = None) -> dict[str, str]:
    """Environment for the stock commands: nnU-Net's three folders under ``root``, our trainers found.

    ``PATH`` starts with this interpreter's ``bin`` (the venv holding nnunet_ts and nnunetv2). On a CPU,
    augmentation runs in the training process (``nnUNet_n_proc_DA=0``) and torch.compile is off.
    """
    env = dict(os.environ if base is None else base)
    root = Path(root).resolve()
    for variable in ROOT_VARIABLES:
        (root / variable).mkdir(parents=True, exist_ok=True)
        env[variable] = str(root / variable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[EXT_TRAINER] = with_our_trainers(env.get(EXT_TRAINER), extra_trainer_dirs)
    env.setdefault("nnUNet_def_n_proc", str(num_processes))
    env.setdefault("nnUNet_compile", "false")
    if device == "cpu":
        env.setdefault("nnUNet_n_proc_DA", "0")
    return env


def dataset_folder(root: Path, dataset_id: int) -> Path:
    """The one ``DatasetXXX_*`` folder of an id under ``root``."""
    found = sorted(Path(root).glob(f"Dataset{dataset_id:03d}_*"))
    if not found:
        raise InputError(f"no Dataset{dataset_id:03d}_* in {root}")
    return found[0]


class CommandFailed(InputError):
    """A stock command exited with an error; the message names its log."""


@dataclass
class CommandRunner:
    """Runs shell commands with ``env``, printing each as ``$ command``; output goes to ``log_dir``.

    Attributes:
        env: environment of every command (see :func:`nnunet_environment`).
        log_dir: one ``<name>.log`` per command.
        echo: where the command lines and timings go (``print``).
        seconds: wall time per log name, filled as commands finish.
    """

    env: dict[str, str]
    log_dir: Path
    echo: Callable[[str], object] = print
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, cmd: str, name: str, epochs: int | None = None) -> Path:
        """Run ``cmd``; with ``epochs``, show nnU-Net's "Epoch N" lines as a progress bar.

        Raises:
            CommandFailed: non-zero exit; the last lines of the log are in the message.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        env = self.env if cmd.lstrip().startswith("nnUNetv2_train") else \
            {k: v for k, v in self.env.items() if k not in TRAINING_ONLY}
        self.echo(f"$ {cmd}")
        self.echo(f"  (output: {log})")
        t0 = time.time()
        with log.open("w") as f:
            proc = subprocess.Popen(["bash", "-c", cmd], env=env, stdout=f, stderr=subprocess.STDOUT)
            if epochs:
                _follow_epochs(proc, log, epochs, name)
            code = proc.wait()
        self.seconds[name] = time.time() - t0
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise CommandFailed(f"step {name!r} failed (exit {code}); full output in {log}; last lines:\n"
                                f"{tail}\nfix the cause and rerun the same command: finished steps are kept")
        self.echo(f"  done in {_duration(self.seconds[name])}")
        return log


def _follow_epochs(proc: subprocess.Popen, log: Path, epochs: int, name: str) -> None:
    from tqdm import tqdm

    # redrawn only when an epoch starts: a log file (nohup, CI) gets one line per epoch, not per second
    with tqdm(total=epochs, desc=f"  {name}", unit="epoch", leave=False) as bar:
        while True:
            try:
                proc.wait(timeout=1.0)  # returns as soon as the command ends
                break
            except subprocess.TimeoutExpired:
                pass
            found = _EPOCH.findall(log.read_text(errors="replace"))
            started = min(epochs, int(found[-1])) if found else 0
            if started > bar.n:
                bar.update(started - bar.n)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def quoted(path: Path | str) -> str:
    return shlex.quote(str(path))
