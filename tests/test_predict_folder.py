"""``nnunet_ts predict`` on a folder of scans (the session's ``ct_model``): one bad scan is reported and the
others written, reruns skip finished scans and redo stale ones, settings changes need --overwrite, the
model's record sets lung cropping, and impossible requests fail before anything runs."""
import json
import os
import shutil

import numpy as np
import pytest

from nnunet_ts.cli.main import main
from nnunet_ts.io.images import Geometry, write_image
from tests.factories.case_factory import make_ct, make_mask
from tests.factories.stock import requires_nnunet

pytestmark = [requires_nnunet, pytest.mark.xdist_group("ct_model")]

GEOMETRY = Geometry((16, 32, 32), (1.5, 1.5, 3.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in (1, 2):
        write_image(folder / f"scan_{i}.nii.gz", make_ct(make_mask(i), i), GEOMETRY)
    (folder / "broken.nii.gz").write_bytes(b"not an image")
    return folder


def _predict(scans, out, model, *extra):
    return main(["predict", str(scans), str(out), "-m", str(model), "--cpu", "--no-mirroring", *extra])


def test_folder_reports_the_bad_scan_resumes_and_guards_other_settings(ct_model, scans, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(scans, out, ct_model.folder) == 1  # a scan failed: exit status 1, the others written
    printed = capsys.readouterr().out
    assert "2 written, 0 skipped (finished earlier), 1 failed" in printed
    assert "failed broken:" in printed and "broken.nii.gz" in printed
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"scan_{i}{e}" for i in (1, 2) for e in (".nii.gz", "_lesions.csv", "_lesions.json")]

    os.utime(scans / "scan_2.nii.gz", ns=(2 ** 62, 2 ** 62))  # the input changed after its outputs
    (scans / "broken.nii.gz").unlink()
    assert _predict(scans, out, ct_model.folder) == 0
    assert "1 written, 1 skipped" in capsys.readouterr().out

    assert _predict(scans, out, ct_model.folder, "--threshold", "0.3") == 2  # other settings, same outputs
    assert "pass --overwrite" in capsys.readouterr().err
    assert _predict(scans, out, ct_model.folder, "--threshold", "0.3", "--overwrite") == 0
    assert "2 written" in capsys.readouterr().out


def test_requests_that_cannot_work_fail_before_anything_runs(ct_model, scans, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(scans, out, ct_model.folder, "--output-type", "dicom-seg") == 2
    assert "needs DICOM input" in capsys.readouterr().err
    assert _predict(scans, tmp_path / "one.nii.gz", ct_model.folder) == 2
    assert "OUTPUT must then be a folder" in capsys.readouterr().err
    assert _predict(scans / "scan_1.nii.gz", out, ct_model.folder, "--boxes", str(scans)) == 2
    assert "reads the CT only" in capsys.readouterr().err
    assert _predict(scans / "scan_1.nii.gz", out, ct_model.folder, "--threshold", "-1", "--preview") == 2
    assert not out.exists()
    capsys.readouterr()
    assert _predict(scans / "broken.nii.gz", out, ct_model.folder) == 2  # one scan: its error is the command's
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.nii.gz" in errors[0]


def test_model_record_sets_lung_cropping_and_flags_override_it(ct_model, scans, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_cache"))  # classical lung masks
    model = tmp_path / ct_model.dataset / ct_model.folder.name
    shutil.copytree(ct_model.folder, model)
    assert main(["model", "show", str(model)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["source"] == "dataset.json" and record["crop_lungs"] is None
    record.update(crop_lungs=True, crop_margin_mm=7.5)
    record.pop("source")
    (model / "nnunet_ts_model.json").write_text(json.dumps(record))

    ct = scans / "scan_1.nii.gz"
    assert _predict(ct, tmp_path / "a.nii.gz", model) == 0
    assert "lung mask: classical" in capsys.readouterr().out  # cropped, as the record says
    assert _predict(ct, tmp_path / "b.nii.gz", model, "--no-crop-lungs") == 0
    captured = capsys.readouterr()
    assert "--no-crop-lungs overrides that" in captured.err and "lung mask" not in captured.out


def test_case_names_of_a_folder_with_series_and_images(tmp_path):
    import re

    from nnunet_ts.inference.cases import find_cases
    from nnunet_ts.synth.dicom_export import SeriesSpec, write_series

    root = tmp_path / "root"
    rng = np.random.default_rng(0)
    spec = dict(hu=np.zeros((3, 8, 8)), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    shared = [write_series(root, SeriesSpec(**spec, patient_id=p), rng) for p in ("P1", "P2")]  # one folder
    own = write_series(root / "b" / "c", SeriesSpec(**spec, patient_id="P3"), rng)
    write_image(root / "x.nii.gz", np.zeros((3, 8, 8), np.int16), Geometry((3, 8, 8), (1, 1, 2), (0, 0, 0),
                                                                            GEOMETRY.direction))
    found = {c.case_id: c for c in find_cases(root).cases}
    suffix = [re.sub(r"\D", "", s.series_uid)[-8:] for s in shared]
    assert sorted(found) == sorted(["x", "b_c", f"root_{suffix[0]}", f"root_{suffix[1]}"])
    assert found["b_c"].series.series_uid == own.series_uid and not found["x"].is_dicom
    only = find_cases(root, series_uid=own.series_uid).cases
    assert [c.case_id for c in only] == ["b_c"]  # --series-uid: that series alone
