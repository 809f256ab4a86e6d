"""The stock nnU-Net commands on a dataset we write, with our trainer found through `nnunet_ts env`.

This is the path a user takes; it runs real subprocesses (~1-2 min on a 2-core CPU).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from case_factory import GEOMETRY, write_cases
from nnunet_ts.io.images import read_image

BIN = Path(sys.executable).parent


def run(cmd: str, env: dict, **extra_env) -> str:
    result = subprocess.run(["bash", "-c", cmd], env={**env, **extra_env}, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.skipif(shutil.which("nnUNetv2_train", path=str(BIN)) is None, reason="nnU-Net not installed")
def test_teacher_dataset_trains_and_predicts_with_stock_commands(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", nnUNet_def_n_proc="1")
    write_cases(tmp_path / "cases", n_strong=6, n_weak=0, n_test=2)
    root = tmp_path / "nn"
    prefix = f'eval "$(nnunet_ts env --root {root})" && '
    run(prefix + f"nnunet_ts dataset teacher --cases {tmp_path / 'cases'} -d 901 -n E2E --folds 2", env)
    run(prefix + "nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres -np 1 --verify_dataset_integrity", env)
    run(prefix + "nnunet_ts tiny-plans -d 901 --patch 16 32 32", env)
    # our grouped splits, not nnU-Net's random ones, are used
    splits = json.loads((root / "nnUNet_preprocessed" / "Dataset901_E2E" / "splits_final.json").read_text())
    assert len(splits) == 2
    log = run(prefix + "nnUNetv2_train 901 3d_tiny 0 -tr TinyBudgetTrainer -device cpu", env,
              nnUNet_n_proc_DA="0")
    assert "Using trainer 'TinyBudgetTrainer'" in log
    model = root / "nnUNet_results" / "Dataset901_E2E" / "TinyBudgetTrainer__nnUNetPlans__3d_tiny"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    pred = tmp_path / "pred"
    run(prefix + f"nnUNetv2_predict -i {root / 'nnUNet_raw' / 'Dataset901_E2E' / 'imagesTs'} -o {pred} "
                 f"-d 901 -c 3d_tiny -f 0 -tr TinyBudgetTrainer -device cpu -chk checkpoint_final.pth", env)
    for case in ("case_006", "case_007"):
        seg, geometry = read_image(pred / f"{case}.nii.gz")
        assert geometry.mismatch(GEOMETRY) is None and set(np.unique(seg)) <= {0, 1}
    run(prefix + f"nnunet_ts evaluate --pred {pred} "
                 f"--gt {root / 'nnUNet_raw' / 'Dataset901_E2E' / 'labelsTs'}", env)
    summary = json.loads((pred / "evaluation_summary.json").read_text())
    assert summary["n_cases"] == 2
