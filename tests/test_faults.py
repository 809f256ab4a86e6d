"""Faults: the real commands killed with SIGKILL at a seeded random point, then rerun, must leave
exactly the bytes of an uninterrupted run; an input edited in place (even with its old mtime put
back) is redone on resume, an unchanged one is not.

A kill point is "after k items finished" (k drawn with a fixed seed): the test polls the command's
log of finished items (``.done.jsonl`` of ``nnunet_ts.datasets.resume.WorkFolder``, or the
pseudo-label work folder's case folders) and kills the whole process group at once, which lands
inside item k + 1.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.cli.main import main
from nnunet_ts.io.boxes_file import load_rectangles, save_rectangles
from tests.factories.case_factory import write_cases
from tests.factories.stock import roots

WORKER_ENV = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _killed(argv: list[str], ready: Callable[[], bool], env: dict | None = None, script: Path | None = None,
            timeout: float = 120.0) -> None:
    """Start a command (``nnunet_ts ARGV``, or ``python SCRIPT ARGV``) in its own process group,
    wait until ``ready()``, then SIGKILL the whole group (the command and any child it started)."""
    head = [sys.executable, str(script)] if script else [sys.executable, "-m", "nnunet_ts.cli.main"]
    proc = subprocess.Popen(head + argv, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **WORKER_ENV, **(env or {})})
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.002)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{argv[:2]} ended ({proc.returncode}) before the kill point"


def _done_lines(work: Path) -> int:
    """Items a WorkFolder logged as finished (complete lines of its .done.jsonl)."""
    log = work / ".done.jsonl"
    return log.read_text().count("\n") if log.is_file() else 0


def _tree(folder: Path, drop: Callable[[str, bytes], bytes] = lambda name, data: data) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): drop(p.name, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _assert_no_leftovers(parent: Path) -> None:
    leftovers = [p.name for p in parent.iterdir() if p.name.endswith((".partial", ".tmp", ".replaced", ".pseudolabel"))]
    assert not leftovers, leftovers


def _k(name: str, n: int) -> int:
    """The seeded kill point: after k of n items (1 <= k < n)."""
    return random.Random(name).randint(1, n - 1)


# ----------------------------------------------------------------------------- dataset, convert

@pytest.mark.parametrize("kind", ["teacher", "weak"])
def test_killed_dataset_resumes_to_the_same_bytes(tmp_path, kind):
    cases = write_cases(tmp_path / "cases", n_strong=8, n_weak=8, n_test=2).parent
    argv = ["dataset", kind, "--cases", str(cases), "-d", "960", "-n", "Fault", "--folds", "2"]
    raw = tmp_path / "raw"
    assert main(argv + ["--raw", str(raw)]) == 0
    reference = _tree(raw / "Dataset960_Fault")
    shutil.rmtree(raw)

    work = raw / ".Dataset960_Fault.partial"
    k = _k(f"dataset {kind}", {"teacher": 10, "weak": 8}[kind])  # strong + test, or weak cases
    _killed(argv + ["--raw", str(raw)], lambda: _done_lines(work) >= k)
    assert work.is_dir() and not (raw / "Dataset960_Fault").exists()
    finished = [json.loads(line)["key"] for line in (work / ".done.jsonl").read_text().splitlines()]
    assert main(argv + ["--raw", str(raw)]) == 0
    assert _tree(raw / "Dataset960_Fault") == reference
    _assert_no_leftovers(raw)
    assert len(finished) >= k


def test_boxes_edited_in_place_after_a_kill_are_used_on_resume(tmp_path):
    cases = write_cases(tmp_path / "cases", n_strong=0, n_weak=10).parent
    argv = ["dataset", "weak", "--cases", str(cases), "-d", "961", "-n", "Edit", "--raw", str(tmp_path / "raw")]
    work = tmp_path / "raw" / ".Dataset961_Edit.partial"
    _killed(argv, lambda: _done_lines(work) >= _k("boxes edit", 10))
    first = json.loads((work / ".done.jsonl").read_text().splitlines()[0])["key"]
    boxes = cases / f"{first}_boxes.json"
    stat = boxes.stat()
    rects, shape = load_rectangles(boxes)
    moved = [replace(r, y_min=r.y_min + 1, y_max=r.y_max + 1) for r in rects]  # one voxel down
    save_rectangles(boxes, moved, shape)
    os.utime(boxes, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or `rsync -t` leave it
    assert main(argv) == 0
    result = _tree(tmp_path / "raw" / "Dataset961_Edit")
    assert main(argv[:-1] + [str(tmp_path / "fresh")]) == 0
    assert result == _tree(tmp_path / "fresh" / "Dataset961_Edit")  # equal to a run on the edited boxes
    segbox = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "raw" / "Dataset961_Edit" / "imagesTs"
                                                       / f"{first}_0001.nii.gz")))
    r = moved[0]
    assert segbox[r.z, r.y_min:r.y_max + 1, r.x_min:r.x_max + 1].all()
    assert not segbox[r.z, r.y_min - 1, r.x_min:r.x_max + 1].any()


@pytest.fixture
def task06(tmp_path):
    """An MSD Task06_Lung-shaped folder with 6 small cases."""
    src = tmp_path / "Task06_Lung"
    for folder in ("imagesTr", "labelsTr"):
        (src / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        ct = rng.integers(-1000, 400, (12, 24, 24)).astype(np.int16)
        mask = np.zeros(ct.shape, np.uint8)
        mask[3:7, 5 + i:11 + i, 6:12] = 1
        for array, folder in ((ct, "imagesTr"), (mask, "labelsTr")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((1.0, 1.0, 2.5))
            sitk.WriteImage(image, str(src / folder / f"lung_{i + 1:03d}.nii.gz"))
    return src


def test_killed_convert_resumes_to_the_same_bytes(tmp_path, task06):
    out = tmp_path / "raw"
    argv = ["convert", "msd", str(task06), "--out", str(out), "-d", "962", "--folds", "2",
            "--weak-fraction", "0.3", "--test-fraction", "0.2"]
    assert main(argv) == 0
    reference = _tree(out)
    shutil.rmtree(out)  # the same paths again: the cohort's report records them

    work = out / "cohorts" / ".msd.partial"
    _killed(argv, lambda: _done_lines(work) >= _k("convert msd", 6))
    assert not (out / "cohorts" / "msd").exists()
    assert main(argv) == 0
    assert _tree(out) == reference
    _assert_no_leftovers(out)
    _assert_no_leftovers(out / "cohorts")


# ----------------------------------------------------------------------------- pseudolabel

WEAK_ID, STUDENT_ID = 913, 912  # the session's box_teacher_model (tests/conftest.py)
FAULT_ID = 941


def _pseudo_args(model, *extra: str, weak: str = str(WEAK_ID), did: int = FAULT_ID) -> list[str]:
    # one fold: half the teacher's work of the two-fold vote; the vote is tested in test_pseudolabel.py
    return ["pseudolabel", "--teacher", str(model.folder), "--folds", "0", "--weak", weak,
            "--strong", str(STUDENT_ID), "-d", str(did), "-n", "Fault", "--device", "cpu", *extra]


def _without_date(name: str, data: bytes) -> bytes:
    if name != "dataset.json":
        return data
    doc = json.loads(data)
    doc["nnunet_ts_pseudolabel"].pop("date")
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def pseudo_reference(box_teacher_model, tmp_path_factory):
    """An uninterrupted pseudo-label run (dataset 941), its files; the dataset is removed again."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in roots(box_teacher_model.root).items():
            mp.setenv(k, v)
        raw = box_teacher_model.root / "nnUNet_raw"
        shutil.rmtree(raw / f"Dataset{FAULT_ID}_Fault", ignore_errors=True)
        assert main(_pseudo_args(box_teacher_model)) == 0
        tree = _tree(raw / f"Dataset{FAULT_ID}_Fault", _without_date)
        shutil.rmtree(raw / f"Dataset{FAULT_ID}_Fault")
    return tree


def _weak_ids(raw: Path) -> list[str]:
    images = raw / f"Dataset{WEAK_ID}_W" / "imagesTs"
    return sorted(p.name[:-len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))


pseudolabel = pytest.mark.xdist_group("box_teacher_model")


@pseudolabel
def test_killed_pseudolabel_resumes_to_the_same_bytes(box_teacher_model, pseudo_reference, in_root):
    root = in_root(box_teacher_model.root)
    raw = root / "nnUNet_raw"
    cases = raw / f".Dataset{FAULT_ID}_Fault.pseudolabel" / "cases"
    k = _k("pseudolabel", 4)
    _killed(_pseudo_args(box_teacher_model), lambda: cases.is_dir() and sum(
        not p.name.startswith(".") for p in cases.iterdir()) >= k, env=roots(root))
    assert not (raw / f"Dataset{FAULT_ID}_Fault").exists()
    assert main(_pseudo_args(box_teacher_model)) == 0
    assert _tree(raw / f"Dataset{FAULT_ID}_Fault", _without_date) == pseudo_reference
    _assert_no_leftovers(raw)
    shutil.rmtree(raw / f"Dataset{FAULT_ID}_Fault")


@pseudolabel
def test_one_of_two_shards_killed_while_both_run(box_teacher_model, pseudo_reference, in_root):
    root = in_root(box_teacher_model.root)
    raw = root / "nnUNet_raw"
    cases = raw / f".Dataset{FAULT_ID}_Fault.pseudolabel" / "cases"
    shards = ["--num-parts", "2", "--part-id"]
    head = [sys.executable, "-m", "nnunet_ts.cli.main"]
    other = subprocess.Popen(head + _pseudo_args(box_teacher_model, *shards, "0"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, **WORKER_ENV, **roots(root)})
    first_of_part_1 = _weak_ids(raw)[1]  # part 1 takes cases 1 and 3 (every 2nd, from 1)
    _killed(_pseudo_args(box_teacher_model, *shards, "1"),
            lambda: (cases / first_of_part_1 / "quality.json").is_file(), env=roots(root))
    assert other.wait() == 0
    assert main(_pseudo_args(box_teacher_model, "--num-parts", "2", "--merge")) == 3  # part 1 unfinished
    assert main(_pseudo_args(box_teacher_model, *shards, "1")) == 0
    assert main(_pseudo_args(box_teacher_model, "--num-parts", "2", "--merge")) == 0
    assert _tree(raw / f"Dataset{FAULT_ID}_Fault", _without_date) == pseudo_reference
    _assert_no_leftovers(raw)
    shutil.rmtree(raw / f"Dataset{FAULT_ID}_Fault")


@pseudolabel
def test_segbox_edited_in_place_is_pseudo_labelled_again(box_teacher_model, in_root, tmp_path, monkeypatch):
    from nnunet_ts.pseudolabel import run as run_module

    root = in_root(box_teacher_model.root)
    weak = tmp_path / "weak"
    shutil.copytree(root / "nnUNet_raw" / f"Dataset{WEAK_ID}_W", weak)
    ids = _weak_ids(root / "nnUNet_raw")
    args = _pseudo_args(box_teacher_model, weak=str(weak), did=942)
    assert main(args + ["--num-parts", "2", "--part-id", "0"]) == 0  # cases 0 and 2 finished
    work = root / "nnUNet_raw" / ".Dataset942_Fault.pseudolabel" / "cases"
    before = sitk.GetArrayFromImage(sitk.ReadImage(str(work / ids[0] / "soft_target.nii.gz")))

    segbox_file = weak / "imagesTs" / f"{ids[0]}_0001.nii.gz"
    stat = segbox_file.stat()
    image = sitk.ReadImage(str(segbox_file))
    shifted = np.roll(sitk.GetArrayFromImage(image), 2, axis=1)  # the box 2 voxels further down
    edited = sitk.GetImageFromArray(shifted)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(segbox_file), useCompression=True)
    os.utime(segbox_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    done = []
    original = run_module._pseudo_label_case
    monkeypatch.setattr(run_module, "_pseudo_label_case",
                        lambda job, teacher, case, tag: done.append(case.case_id) or original(job, teacher, case, tag))
    assert main(args) == 0
    assert sorted(done) == sorted([ids[0], ids[1], ids[3]])  # the edited case again, case 2 kept
    after = sitk.GetArrayFromImage(sitk.ReadImage(
        str(root / "nnUNet_raw" / "Dataset942_Fault" / "softTargetsTr" / f"{ids[0]}.nii.gz")))
    assert not np.array_equal(before, after)
    shutil.rmtree(root / "nnUNet_raw" / "Dataset942_Fault")


# ----------------------------------------------------------------------------- demo

DEMO_SCRIPT = """
import sys
from pathlib import Path

from nnunet_ts.demo.config import Budget, Cohort, DemoConfig
from nnunet_ts.demo.pipeline import Demo, run_demo

# the demo's first steps only: the synthetic cohort, its sets and lung crops, and the teacher dataset
FIRST = ("synth", "sets", "lung_crops", "dataset_teacher")
original = Demo.steps
Demo.steps = lambda self: [step for step in original(self) if step.name in FIRST]
config = DemoConfig("scarce", "cpu", Cohort(n_strong=4, n_weak=1, n_test=1), synth_shape=(24, 48, 48),
                    tiny_patch=(24, 48, 48), teacher_budget=Budget(1, 2, 1), student_budget=Budget(1, 2, 1),
                    panels=1, num_processes=1)
run_demo(Demo(config, Path(sys.argv[1]), echo=print))
"""


def test_demo_killed_in_its_first_steps_resumes_to_the_same_cohort_and_datasets(tmp_path):
    """The demo (its first steps: synth, sets, lung crops and the teacher dataset) killed with its
    children during a seeded step (synth or the teacher dataset, each a `nnunet_ts` child process),
    rerun: the cohort, its crops and the raw dataset are the bytes of an uninterrupted run, and every
    step is marked done. (Later steps train networks:
    their resume is tested by test_demo.py with the step markers, and by nnU-Net's checkpoints.)"""
    from nnunet_ts.demo.config import TEACHER_ID

    script = tmp_path / "demo_first_steps.py"
    script.write_text(DEMO_SCRIPT)
    out = tmp_path / "demo"

    def run_to_end():
        result = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                                env={**os.environ, **WORKER_ENV})
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    def outputs():
        return {**_tree(out / "cases"), **_tree(out / "cases_lung_crops"), **_tree(out / "nnunet" / "nnUNet_raw")}

    run_to_end()
    reference = outputs()
    shutil.rmtree(out)

    raw = out / "nnunet" / "nnUNet_raw"
    stage = random.Random("demo").choice(["synth", "dataset_teacher"])
    work = out / ".cases.partial" if stage == "synth" else raw / f".Dataset{TEACHER_ID}_DemoTeacher.partial"
    _killed([str(out)], lambda: _done_lines(work) >= 1, script=script)
    assert not (out / ".steps" / f"{stage}.done").exists()
    run_to_end()
    assert outputs() == reference
    assert sorted(p.name for p in (out / ".steps").iterdir()) == sorted(
        f"{s}.done" for s in ("synth", "sets", "lung_crops", "dataset_teacher"))
    _assert_no_leftovers(out)
    _assert_no_leftovers(raw)


# ----------------------------------------------------------------------------- derived files

def test_is_current_sees_an_input_edited_in_place_with_its_mtime_put_back(tmp_path):
    from nnunet_ts.io.atomic import is_current, mark_current

    source, derived = tmp_path / "case.pkl", tmp_path / "case_soft.npy"
    source.write_bytes(b"properties v1")
    derived.write_bytes(b"made from v1")
    assert is_current(derived, source)  # no record: modification times
    mark_current(derived, source)
    assert is_current(derived, source)
    stat = source.stat()
    source.write_bytes(b"properties v2")  # same size, old mtime restored
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not is_current(derived, source)
    os.utime(source, ns=(stat.st_atime_ns, derived.stat().st_mtime_ns + 10**9))  # newer: stale by mtime too
    assert not is_current(derived, source)
    assert not is_current(tmp_path / "missing.npy", source)
