"""The runner behind `nnunet_ts demo` and scripts/experiments/teacher_experiment.py: environment, logs, failures."""
import os
import sys
from pathlib import Path

import pytest

from nnunet_ts.nnunet.paths import trainers_dir
from nnunet_ts.nnunet.stock_commands import _EPOCH, TRAINING_ONLY, CommandFailed, CommandRunner, nnunet_environment


def test_environment_points_nnunet_at_one_root_and_finds_our_trainers(tmp_path):
    env = nnunet_environment(tmp_path / "nn", "cpu", 2, extra_trainer_dirs=[tmp_path / "extra"],
                             base={"PATH": "/usr/bin", "nnUNet_extTrainer": f"/other{os.pathsep}{trainers_dir()}"})
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        assert env[variable] == str((tmp_path / "nn" / variable).resolve())
        assert Path(env[variable]).is_dir()
    # ours first, each once; other plugins' folders kept
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(trainers_dir()), str(tmp_path / "extra"), "/other"]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert (env["nnUNet_def_n_proc"], env["nnUNet_n_proc_DA"], env["nnUNet_compile"]) == ("2", "0", "false")
    assert "nnUNet_n_proc_DA" not in nnunet_environment(tmp_path / "nn", "cuda", 2, base={})


def test_runner_logs_output_and_gives_training_settings_to_training_only(tmp_path):
    lines = []
    runner = CommandRunner({"PATH": os.environ["PATH"], TRAINING_ONLY[0]: "0"}, tmp_path / "logs", lines.append)
    log = runner.run(f"echo hello; echo ${{{TRAINING_ONLY[0]}:-unset}}", "greet")
    assert log.read_text().split() == ["hello", "unset"]
    assert lines[0] == f"$ echo hello; echo ${{{TRAINING_ONLY[0]}:-unset}}" and "greet" in runner.seconds


def test_a_failing_command_names_its_log_and_shows_the_last_lines(tmp_path):
    runner = CommandRunner({"PATH": os.environ["PATH"]}, tmp_path / "logs", lambda line: None)
    with pytest.raises(CommandFailed, match=r"(?s)exit 3.*broken\.log.*the reason"):
        runner.run("echo the reason; exit 3", "broken")


def test_epoch_lines_of_nnunet_logs_are_recognised():
    log = "2026-11-23 10:00:01.1: Epoch 0\n2026-11-23 10:00:09.9: Epoch 1\nEpoch time: 8 s\n"
    assert _EPOCH.findall(log) == ["0", "1"]
