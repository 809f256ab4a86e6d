"""The student through the stock nnU-Net commands: plan, train (soft targets made at start), continue,
validate with probabilities, predict. Real subprocesses, tiny budgets (~2-3 min on a 2-core CPU)."""
import json
import shutil

import numpy as np

from nnunet_ts.datasets.student import write_student_dataset
from nnunet_ts.io.images import read_image
from tests.factories.case_factory import GEOMETRY
from tests.factories.stock import TINY, requires_nnunet, stock_env
from tests.factories.stock import prefix as stock_prefix
from tests.factories.stock import run as _run
from tests.factories.student_factory import write_student_cases

STUDENT_ID = 907
TRAINER = "TeacherStudentTrainer"


@requires_nnunet
def test_student_trains_validates_and_predicts_with_stock_commands(tmp_path):
    env = stock_env()
    root = tmp_path / "nn"
    prefix = stock_prefix(root)
    _run(prefix + "true", env)  # creates the three folders
    cases = write_student_cases(tmp_path / "cases", n_strong=4, n_pseudo=4)
    raw = write_student_dataset(cases, STUDENT_ID, "StudentE2E", root / "nnUNet_raw", num_folds=2)
    _run(prefix + f"nnUNetv2_plan_and_preprocess -d {STUDENT_ID} -c 3d_fullres -np 1 "
                  f"--verify_dataset_integrity", env)
    _run(prefix + f"nnunet_ts tiny-plans -d {STUDENT_ID} {TINY}", env)

    train = prefix + f"nnUNetv2_train {STUDENT_ID} 3d_tiny 0 -tr {TRAINER} -device cpu"
    log = _run(train + " --npz", env, nnUNet_n_proc_DA="0")
    assert f"Using trainer '{TRAINER}'" in log
    data = root / "nnUNet_preprocessed" / raw.name / "nnUNetPlans_3d_fullres"
    # the trainer made the soft targets of the pseudo cases it uses (fold 0: train + val)
    splits = json.loads((raw / "splits_final.json").read_text())[0]
    pseudo = sorted(c.case_id for c in cases if c.source == "pseudo")
    assert sorted(p.name[:-len("_soft.npy")] for p in data.glob("*_soft.npy")) == pseudo
    model = root / "nnUNet_results" / raw.name / f"{TRAINER}__nnUNetPlans__3d_tiny" / "fold_0"
    assert (model / "checkpoint_final.pth").is_file()
    summary = json.loads((model / "validation" / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == len(splits["val"])
    for case in splits["val"]:
        assert np.load(model / "validation" / f"{case}.npz")["probabilities"].shape[0] == 2

    _run(train + " --c", env, nnUNet_n_proc_DA="0")  # continues from checkpoint_final
    (model / "validation" / "summary.json").unlink()
    _run(train + " --val --npz", env, nnUNet_n_proc_DA="0")
    assert (model / "validation" / "summary.json").is_file()

    inputs = tmp_path / "predict_in"
    inputs.mkdir()
    for case in ("case_000", "case_005"):
        shutil.copy(raw / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    pred = tmp_path / "pred"
    _run(prefix + f"nnUNetv2_predict -i {inputs} -o {pred} -d {STUDENT_ID} -c 3d_tiny -f 0 -tr {TRAINER} "
                  f"-device cpu -chk checkpoint_final.pth --save_probabilities", env)
    for case in ("case_000", "case_005"):
        seg, geometry = read_image(pred / f"{case}.nii.gz")
        assert geometry.mismatch(GEOMETRY) is None and set(np.unique(seg)) <= {0, 1}
        probabilities = np.load(pred / f"{case}.npz")["probabilities"]
        assert probabilities.shape == (2, *GEOMETRY.shape_zyx)
        np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-3)
