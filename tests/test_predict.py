"""``nnunet_ts predict`` with a tiny model trained with nnU-Net (the session's ``ct_model``, tests/conftest.py):
the output has the input's exact geometry, for NIfTI and DICOM inputs, masks and probabilities."""
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.cli.main import main
from nnunet_ts.synth import SynthConfig, generate_case
from nnunet_ts.synth.dicom_export import SeriesSpec, rotation, write_series
from tests.factories.stock import requires_nnunet

pytestmark = [requires_nnunet, pytest.mark.xdist_group("ct_model")]


@pytest.fixture(scope="module")
def model(ct_model) -> Path:
    """A CT-only (student-form) model: 6 cases, tiny plans, BaselineTrainer (2 x 4 iterations)."""
    assert (ct_model.folder / "fold_0" / "checkpoint_final.pth").is_file()
    return ct_model.folder


@pytest.fixture(scope="module")
def thorax():
    """A synthetic thorax CT (HU) on a grid near the model's spacing, oblique and off-centre."""
    case = generate_case(11, SynthConfig.compact((20, 56, 48)))
    return case.ct, (1.4, 1.6, 2.8), (-37.5, 120.25, -612.0), rotation(8.0, -20.0)


@pytest.fixture
def no_lungmask_cache(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_cache"))


def assert_geometry_of(path: Path, reference: sitk.Image, atol=1e-6):
    out = sitk.ReadImage(str(path))
    assert out.GetSize() == reference.GetSize()
    np.testing.assert_allclose(out.GetSpacing(), reference.GetSpacing(), atol=atol)
    np.testing.assert_allclose(out.GetOrigin(), reference.GetOrigin(), atol=atol)
    np.testing.assert_allclose(out.GetDirection(), reference.GetDirection(), atol=atol)
    return sitk.GetArrayFromImage(out)


def test_predict_nifti_writes_mask_and_probabilities_in_the_input_geometry(model, thorax, tmp_path):
    hu, spacing, origin, direction = thorax
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(direction.reshape(-1)))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    reference = sitk.ReadImage(str(tmp_path / "ct.nii.gz"))

    assert main(["predict", str(tmp_path / "ct.nii.gz"), str(tmp_path / "mask.nii.gz"), "-m", str(model),
                 "--cpu"]) == 0
    mask = assert_geometry_of(tmp_path / "mask.nii.gz", reference)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}

    assert main(["predict", str(tmp_path / "ct.nii.gz"), str(tmp_path / "prob.nii.gz"), "-m", str(model),
                 "--cpu", "--threshold", "-1"]) == 0
    prob = assert_geometry_of(tmp_path / "prob.nii.gz", reference)
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    assert np.array_equal(prob >= 0.5, mask > 0)


def test_predict_dicom_with_lung_crops_filter_and_smoothing(model, thorax, tmp_path, no_lungmask_cache, capsys):
    hu, spacing, origin, direction = thorax
    rng = np.random.default_rng(0)
    write_series(tmp_path / "dicom", SeriesSpec(hu=hu.astype(float), spacing=spacing, origin=origin,
                                                direction=direction, slope=1.0, intercept=-1024.0), rng)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dicom")))
    reference = reader.Execute()
    assert main(["predict", str(tmp_path / "dicom"), str(tmp_path / "mask.nii.gz"), "-m", str(model), "--cpu",
                 "--crop-lungs", "--lung-filter", "--radius", "1", "--no-mirroring"]) == 0
    mask = assert_geometry_of(tmp_path / "mask.nii.gz", reference)
    assert set(np.unique(mask)) <= {0, 1}
    out = capsys.readouterr()
    assert "classical" in out.err and "lung mask: classical" in out.out  # the fallback is loud


def test_predict_rejects_bad_inputs_with_one_line(model, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.nii.gz"), str(tmp_path / "o.nii.gz"), "-m", str(model)]) == 3
    assert main(["predict", str(tmp_path), str(tmp_path / "o.nii.gz"), "-m", str(tmp_path)]) == 3
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "does not exist" in errors[0]
