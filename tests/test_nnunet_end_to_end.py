"""The stock nnU-Net commands on a dataset we write, with our trainer found through `nnunet_ts env`.

This is the path a user takes: the session's ``ct_model`` (tests/conftest.py) is written by
``nnunet_ts dataset``, planned by ``nnUNetv2_plan_and_preprocess --verify_dataset_integrity``, shrunk by
``nnunet_ts tiny-plans`` and trained by ``nnUNetv2_train -tr BaselineTrainer``; here it predicts and is
evaluated with the stock commands too.
"""
import json

import numpy as np
import pytest

from nnunet_ts.io.images import read_image
from tests.factories.case_factory import GEOMETRY
from tests.factories.stock import prefix, requires_nnunet, run

pytestmark = pytest.mark.xdist_group("ct_model")


@requires_nnunet
def test_dataset_trains_and_predicts_with_stock_commands(ct_model, tmp_path):
    root, raw = ct_model.root, ct_model.raw
    # our grouped splits, not nnU-Net's random ones, are used
    splits = json.loads((root / "nnUNet_preprocessed" / raw.name / "splits_final.json").read_text())
    assert len(splits) == 2
    assert "Using trainer 'BaselineTrainer'" in ct_model.logs[0]
    # the budget of the configuration (tiny-plans --epochs 2 --iterations 4), not nnU-Net's 1000 x 250
    assert "Epoch 1" in ct_model.logs[0] and "Epoch 2" not in ct_model.logs[0]
    assert (ct_model.folder / "fold_0" / "checkpoint_final.pth").is_file()
    pred = tmp_path / "pred"
    run(prefix(root) + f"nnUNetv2_predict -i {raw / 'imagesTs'} -o {pred} -d {raw.name} -c 3d_tiny -f 0 "
        f"-tr {ct_model.trainer} -device cpu -chk checkpoint_final.pth")
    for case in ("case_006", "case_007"):
        seg, geometry = read_image(pred / f"{case}.nii.gz")
        assert geometry.mismatch(GEOMETRY) is None and set(np.unique(seg)) <= {0, 1}
    run(prefix(root) + f"nnunet_ts evaluate --pred {pred} --gt {raw / 'labelsTs'}")
    summary = json.loads((pred / "evaluation_summary.json").read_text())
    assert summary["n_cases"] == 2
