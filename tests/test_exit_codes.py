"""Exit statuses of the ``nnunet_ts`` command: 2 wrong command line (argparse), 3 bad input data,
130 interrupted; every command's --help lists them. Checked through the installed entry point."""
import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from nnunet_ts.cli.main import SUBCOMMANDS, build_parser
from nnunet_ts.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_USAGE
from tests.factories.case_factory import write_cases

NNUNET_TS = [sys.executable, "-m", "nnunet_ts.cli.main"]


def _parsers():
    """(name, parser) of every command and nested subcommand (convert msd, ...)."""
    out = []

    def walk(name, parser):
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child_name, child in action.choices.items():
                    walk(f"{name} {child_name}".strip(), child)
    walk("", build_parser())
    return out


def test_every_command_help_lists_the_exit_statuses():
    parsers = _parsers()
    names = {name for name, _ in parsers}
    assert {name for name, *_ in SUBCOMMANDS} <= names and {"convert msd", "convert nsclc", "convert lungdx"} <= names
    for name, parser in parsers:
        text = parser.format_help()
        assert text.count("exit status:") == 1, name
        for line in ("  0    done", "  2    wrong command line", "  3    bad input data", "  130  interrupted"):
            assert line in text, (name, line)


def _run(*args, **kw):
    return subprocess.run(NNUNET_TS + list(args), capture_output=True, text=True, **kw)


def test_usage_error_is_2_and_bad_data_is_3(tmp_path):
    usage = _run("dataset", "teacher", "-d", "5", "-n", "X")  # --cases missing
    assert usage.returncode == EXIT_USAGE and "the following arguments are required: --cases" in usage.stderr
    bad = _run("dataset", "teacher", "--cases", str(tmp_path / "nowhere"), "-d", "5", "-n", "X",
               "--raw", str(tmp_path / "raw"))
    assert bad.returncode == EXIT_BAD_INPUT
    assert bad.stderr.strip() == (f"nnunet_ts dataset: error: case manifest {tmp_path / 'nowhere'} "
                                  f"does not exist; create it with `nnunet_ts synth` or write a CSV with "
                                  f"columns case_id, patient_id, subset, ct, mask, boxes")


def test_ctrl_c_is_130_with_one_line_and_the_rerun_finishes(tmp_path):
    cases = write_cases(tmp_path / "cases", n_strong=12, n_weak=0).parent
    args = ["dataset", "student", "--cases", str(cases), "-d", "970", "-n", "Int", "--raw", str(tmp_path / "raw")]
    # a shell's background job (or a test worker) may ignore SIGINT, and children inherit that
    proc = subprocess.Popen(NNUNET_TS + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "raw" / ".Dataset970_Int.partial" / ".done.jsonl"
    deadline = time.monotonic() + 60
    while proc.poll() is None and not (log.is_file() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.rstrip().endswith("nnunet_ts dataset: interrupted") and "Traceback" not in err
    assert not (tmp_path / "raw" / "Dataset970_Int").exists()
    again = _run(*args)
    assert again.returncode == 0 and (tmp_path / "raw" / "Dataset970_Int" / "dataset.json").is_file()


@pytest.mark.parametrize("argv", [["--version"], ["env", "--help"]])
def test_help_and_version_exit_0(argv):
    assert _run(*argv, env={**os.environ}).returncode == 0
