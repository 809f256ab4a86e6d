"""``nnunet_ts convert msd``: an MSD Task06_Lung-shaped folder -> cohort, subsets and the three datasets,
with lung crops for the student dataset (classical fallback recorded)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.cli.main import main
from nnunet_ts.dataset_conversion.common import ConvertedCase, assign_subsets
from nnunet_ts.io.images import read_image
from nnunet_ts.synth import SynthConfig, generate_case


@pytest.fixture
def task06(tmp_path):
    src = tmp_path / "Task06_Lung"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (src / folder).mkdir(parents=True)
    for i in range(6):
        case = generate_case(100 + i, SynthConfig.compact((20, 48, 48), tumour_count_probs=(0, 1, 0, 0)))
        for array, folder in ((case.ct, "imagesTr"), (case.mask, "labelsTr")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(case.geometry.spacing)
            image.SetOrigin(case.geometry.origin)
            image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # not the identity
            sitk.WriteImage(image, str(src / folder / f"lung_{i + 1:03d}.nii.gz"))
    (src / "imagesTr" / "._lung_001.nii.gz").write_bytes(b"\0")  # macOS junk from the MSD tar
    sitk.WriteImage(sitk.Image(8, 8, 8, sitk.sitkInt16), str(src / "imagesTs" / "lung_099.nii.gz"))
    return src


def test_convert_msd_writes_cohort_subsets_and_datasets(task06, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_cache"))
    raw = tmp_path / "raw"
    argv = ["convert", "msd", str(task06), "--out", str(raw), "-d", "640", "--test-fraction", "0.2",
            "--weak-fraction", "0.3", "--folds", "2", "--crop-lungs"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "msd: kept 6 case(s) (3 strong, 1 test, 2 weak), dropped 1" in printed
    cohort = raw / "cohorts" / "msd"
    report = json.loads((cohort / "conversion_report.json").read_text())
    assert report["dropped_items"][0]["reason"].startswith("no label")
    subsets = {c["case_id"]: c["subset"] for c in report["cases"]}
    # cases keep their image and label exactly
    for i in range(6):
        ct, geometry = read_image(cohort / f"msd_lung_{i + 1:03d}_ct.nii.gz")
        source, source_geometry = read_image(task06 / "imagesTr" / f"lung_{i + 1:03d}.nii.gz")
        assert np.array_equal(ct, source) and geometry.mismatch(source_geometry, atol=1e-6) is None
        mask, _ = read_image(cohort / f"msd_lung_{i + 1:03d}_mask.nii.gz")
        assert np.array_equal(mask, read_image(task06 / "labelsTr" / f"lung_{i + 1:03d}.nii.gz")[0] > 0)

    teacher, student, weak = (raw / f"Dataset64{k}_MSDLung{kind}"
                              for k, kind in enumerate(("Teacher", "Student", "Weak")))
    strong = sorted(c for c, s in subsets.items() if s == "strong")
    assert sorted(p.name[:-len("_0000.nii.gz")] for p in (teacher / "imagesTr").glob("*_0000.nii.gz")) == strong
    assert len(list((teacher / "labelsTs").iterdir())) == 1
    assert len(list((weak / "imagesTs").glob("*_0001.nii.gz"))) == 2
    # the student dataset holds lung crops (one case per lung) and says how the lungs were found
    crops = json.loads((student / "lung_crops.json").read_text())
    assert crops["fallback_used"] is True and crops["methods"] == ["classical"]
    assert sorted(p.name for p in (student / "imagesTr").iterdir()) == sorted(
        f"{c}_{side}_0000.nii.gz" for c in strong for side in ("right", "left"))
    splits = json.loads((student / "splits_final.json").read_text())
    for fold in splits:  # both lungs of a scan stay on one side of every fold
        assert {c.rsplit("_", 1)[0] for c in fold["train"]}.isdisjoint({c.rsplit("_", 1)[0] for c in fold["val"]})

    assert main(argv) == 3  # rerunning needs --overwrite ...
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0  # ... and then gives the same cohort
    assert json.loads((cohort / "conversion_report.json").read_text())["cases"] == report["cases"]


def test_subsets_take_whole_patients_and_spread_tumour_volumes():
    cases = [ConvertedCase(f"c{i}", f"p{i // 2}", "ct", "m", "b", float(v), "src")
             for i, v in enumerate([90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0])]
    subsets = assign_subsets(cases, test_fraction=0.2, weak_fraction=0.3, seed=1)
    per_patient = {}
    for c in cases:
        per_patient.setdefault(c.patient_id, set()).add(subsets[c.case_id])
    assert all(len(s) == 1 for s in per_patient.values())
    counts = {s: sum(1 for p in per_patient.values() if s in p) for s in ("strong", "weak", "test")}
    assert counts == {"strong": 5, "weak": 3, "test": 2}
    # the largest tumours are not all in one subset
    top3 = [next(iter(per_patient[f"p{i}"])) for i in range(3)]
    assert len(set(top3)) == 3


def test_an_interrupted_conversion_resumes_without_redoing_finished_items(tmp_path):
    from nnunet_ts.dataset_conversion.common import Dropped, convert_items

    calls = []

    def convert_one(item, folder):
        calls.append(item)
        if item == "b" and calls.count("b") == 1:
            raise KeyboardInterrupt
        return [Dropped(item, "just testing")]

    items = [(name, name) for name in "abc"]
    with pytest.raises(KeyboardInterrupt):
        convert_items(items, convert_one, tmp_path / "cohort", {"v": 1}, progress=False)
    work, kept, dropped = convert_items(items, convert_one, tmp_path / "cohort", {"v": 1}, progress=False)
    assert calls == ["a", "b", "b", "c"] and [d.source for d in dropped] == ["a", "b", "c"] and not kept
