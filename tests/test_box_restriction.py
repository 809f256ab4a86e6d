"""Inference-time box restriction: the region is the box grown by a margin in mm, and predictions
outside it become background, in label maps, probability maps and whole prediction folders."""
import numpy as np
import pytest

from nnunet_ts.boxes.restriction import box_region, restrict_labels, restrict_probabilities
from nnunet_ts.cli.main import main
from nnunet_ts.io.images import Geometry, read_image, write_image

GEOMETRY = Geometry(shape_zyx=(8, 20, 20), spacing=(1.0, 1.0, 3.0), origin=(-5.0, 10.0, 30.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_region_is_the_box_grown_in_mm_with_anisotropic_spacing():
    box = np.zeros(GEOMETRY.shape_zyx, np.uint8)
    box[4, 10, 10] = 1
    # 2.5 mm reach: no neighbouring slice (3 mm away); in-plane the disc x^2 + y^2 <= 6.25 (21 voxels)
    region = box_region(box, GEOMETRY.spacing_zyx, margin_mm=2.5)
    assert region.sum() == 21 and region[4].sum() == 21
    assert region[4, 12, 11] and not region[4, 12, 12]
    # 3 mm reaches the slices above and below, with the centre voxel only
    region = box_region(box, GEOMETRY.spacing_zyx, margin_mm=3.0)
    assert region[3].sum() == 1 and region[5].sum() == 1 and region[3, 10, 10]


@pytest.mark.parametrize("margin", [0.0, 4.0])
def test_region_of_box_edges_and_empty_box(margin):
    box = np.zeros(GEOMETRY.shape_zyx, np.float32)
    assert not box_region(box, GEOMETRY.spacing_zyx, margin).any()
    box[2:5, 3:9, 4:7] = 1.0
    box[2, 3, 4] = 0.4  # a resampled edge counts from 0.5 on
    region = box_region(box, GEOMETRY.spacing_zyx, margin)
    assert region[box > 0.5].all()
    assert region.sum() == (box > 0.5).sum() if margin == 0 else region.sum() > (box > 0.5).sum()


def test_restriction_of_probabilities_and_labels():
    region = np.zeros((2, 3, 3), bool)
    region[0] = True
    classes = np.random.default_rng(0).dirichlet([1, 1], size=(2, 3, 3)).transpose(3, 0, 1, 2)
    restricted = restrict_probabilities(classes, region)
    np.testing.assert_array_equal(restricted[:, 0], classes[:, 0])
    assert (restricted[0, 1] == 1).all() and (restricted[1, 1] == 0).all()
    np.testing.assert_allclose(restricted.sum(0), 1.0)
    foreground = restrict_probabilities(classes[1], region)
    assert (foreground[1] == 0).all() and (foreground[0] == classes[1, 0]).all()
    labels = np.ones((2, 3, 3), np.uint8)
    assert restrict_labels(labels, region).sum() == 9
    with pytest.raises(ValueError, match="same grid"):
        restrict_probabilities(classes, region[:1])


def _prediction_folder(tmp_path):
    pred, images = tmp_path / "pred", tmp_path / "images"
    pred.mkdir()
    images.mkdir()
    labels = np.zeros(GEOMETRY.shape_zyx, np.uint8)
    labels[3:5, 5:8, 5:8] = 1     # the tumour, in its box
    labels[3:5, 15:18, 15:18] = 1  # a vessel far from the box (>= 7 mm in-plane)
    box = np.zeros(GEOMETRY.shape_zyx, np.uint8)
    box[3:5, 5:8, 5:8] = 1
    probabilities = np.stack([1.0 - 0.9 * labels, 0.9 * labels]).astype(np.float32)
    write_image(pred / "case_a.nii.gz", labels, GEOMETRY)
    np.savez_compressed(pred / "case_a.npz", probabilities=probabilities)
    write_image(images / "case_a_0001.nii.gz", box, GEOMETRY)
    return pred, images, labels


def test_restrict_to_box_command(tmp_path, capsys):
    pred, images, labels = _prediction_folder(tmp_path)
    out = tmp_path / "out"
    args = ["restrict-to-box", "--pred", str(pred), "--images", str(images), "--out", str(out),
            "--margin-mm", "2"]
    assert main(args) == 0
    restricted, geometry = read_image(out / "case_a.nii.gz")
    assert geometry == GEOMETRY
    np.testing.assert_array_equal(restricted[:, :10, :10], labels[:, :10, :10])
    assert restricted[:, 10:, 10:].sum() == 0
    probabilities = np.load(out / "case_a.npz")["probabilities"]
    assert probabilities[1].sum() == pytest.approx(0.9 * labels[:, :10, :10].sum())
    assert sorted(p.name for p in out.iterdir()) == ["case_a.nii.gz", "case_a.npz"]

    assert main(args) == 3
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--margin-mm", "20"]) == 0
    assert read_image(out / "case_a.nii.gz")[0].sum() == labels.sum()


def test_restrict_to_box_errors_write_nothing(tmp_path, capsys):
    pred, images, _ = _prediction_folder(tmp_path)
    out = tmp_path / "out"
    base = ["restrict-to-box", "--pred", str(pred), "--out", str(out)]
    assert main(base + ["--images", str(tmp_path / "nowhere")]) == 3
    assert "segbox file" in capsys.readouterr().err
    shifted = Geometry(GEOMETRY.shape_zyx, GEOMETRY.spacing, (0.0, 0.0, 0.0), GEOMETRY.direction)
    write_image(images / "case_a_0001.nii.gz", np.zeros(GEOMETRY.shape_zyx, np.uint8), shifted)
    assert main(base + ["--images", str(images)]) == 3
    assert "does not share the voxel grid" in capsys.readouterr().err
    assert not out.exists()
