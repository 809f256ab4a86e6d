"""``nnunet_ts predict`` with a tiny model trained with nnU-Net (the session's ``ct_model``, tests/conftest.py):
the output has the input's exact geometry, for NIfTI and DICOM inputs, masks and probabilities; the
post-processing flags mean what LungTumorMask's mean; nnU-Net's flag spellings are accepted."""
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


def test_predict_nifti_writes_mask_and_probabilities_in_the_input_geometry(model, thorax, tmp_path, capsys):
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
    assert np.array_equal(prob > 0.5, mask > 0)  # nnU-Net's argmax of two classes
    # two outputs of one scan in one folder: each is finished on its own
    assert main(["predict", str(tmp_path / "ct.nii.gz"), str(tmp_path / "mask.nii.gz"), "-m", str(model),
                 "--cpu"]) == 0
    assert "0 written, 1 skipped" in capsys.readouterr().out


def test_predict_dicom_with_lung_crops_filter_and_smoothing(model, thorax, tmp_path, no_lungmask_cache, capsys):
    hu, spacing, origin, direction = thorax
    rng = np.random.default_rng(0)
    write_series(tmp_path / "dicom", SeriesSpec(hu=hu.astype(float), spacing=spacing, origin=origin,
                                                direction=direction, slope=1.0, intercept=-1024.0), rng)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dicom")))
    reference = reader.Execute()
    assert main(["predict", str(tmp_path / "dicom"), str(tmp_path / "mask.nii.gz"), "-m", str(model), "--cpu",
                 "--crop-lungs", "--lung-filter", "--lung-components", "--radius", "1", "--smooth", "1",
                 "--no-mirroring"]) == 0
    mask = assert_geometry_of(tmp_path / "mask.nii.gz", reference)
    assert set(np.unique(mask)) <= {0, 1}
    out = capsys.readouterr()
    assert "classical" in out.err and "lung mask: classical" in out.out  # the fallback is loud


def test_predict_rejects_bad_inputs_with_one_line(model, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.nii.gz"), str(tmp_path / "o.nii.gz"), "-m", str(model)]) == 2
    assert main(["predict", str(tmp_path), str(tmp_path / "o.nii.gz"), "-m", str(tmp_path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "does not exist" in errors[0]


def _ring(shape=(3, 9, 9)):
    mask = np.zeros(shape, np.uint8)
    mask[1, 2:7, 2:7] = 1
    mask[1, 4, 4] = 0  # a one-voxel hole in the middle slice
    return mask


@pytest.mark.parametrize("function, args, expected", [
    # LungTumorMask's --radius: per-slice closing fills the hole, nothing reaches the other slices
    ("close_slices", (_ring(), 1), lambda m: np.pad(np.ones((1, 5, 5), np.uint8), ((1, 1), (2, 2), (2, 2)))),
    ("close_slices", (_ring(), 0), lambda m: m),
    # the closing does not grow a mask touching the border
    ("close_slices", (np.ones((1, 4, 4), np.uint8), 2), lambda m: m),
    # --threshold: strictly above
    ("threshold_mask", (np.array([[[0.2, 0.5, 0.51]]], np.float32), 0.5), lambda m: np.array([[[0, 0, 1]]], np.uint8)),
    ("threshold_mask", (np.array([[[0.0, 0.01]]], np.float32), 0.0), lambda m: np.array([[[0, 1]]], np.uint8)),
])
def test_postprocessing_table(function, args, expected):
    from nnunet_ts.inference import postprocess

    out = getattr(postprocess, function)(*args)
    np.testing.assert_array_equal(out, expected(args[0]))


def test_lung_filter_is_voxelwise_and_lung_components_keep_whole_components():
    from nnunet_ts.inference.postprocess import keep_lung_components, lung_filter

    lungs = np.zeros((1, 1, 6), np.uint8)
    lungs[..., :3] = 1
    probability = np.array([[[0.9, 0.8, 0.7, 0.6, 0.0, 0.9]]], np.float32)
    np.testing.assert_array_equal(lung_filter(probability, lungs), np.array([[[0.9, 0.8, 0.7, 0, 0, 0]]], np.float32))
    assert lung_filter(probability, lungs).dtype == np.float32
    mask = (probability > 0.5).astype(np.uint8)  # components: voxels 0-3 (touches the lungs) and 5
    np.testing.assert_array_equal(keep_lung_components(mask, lungs), [[[1, 1, 1, 1, 0, 0]]])


@pytest.mark.parametrize("command, argv, expected", [
    ("predict", ["ct.nii.gz", "o.nii.gz", "-m", "M", "-f", "0", "1", "-chk", "c.pth", "-device", "cpu",
                 "-step_size", "0.25", "--disable_tta"],
     {"folds": ["0", "1"], "checkpoint": "c.pth", "device": "cpu", "step_size": 0.25, "no_mirroring": True}),
    ("pseudolabel", ["--teacher", "T", "--weak", "1", "--strong", "2", "-d", "3", "-n", "P", "-f", "0", "1",
                     "-chk", "c.pth", "-device", "cpu", "-step_size", "0.25"],
     {"folds": ["0", "1"], "checkpoint": "c.pth", "device": "cpu", "step_size": 0.25}),
    ("demo", ["-device", "cpu"], {"device": "cpu"}),
])
def test_nnunet_spellings_are_accepted(command, argv, expected):
    from nnunet_ts.cli.main import build_parser

    args = build_parser().parse_args([command, *argv])
    assert {k: getattr(args, k) for k in expected} == expected
