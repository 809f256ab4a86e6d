"""Lung masks: the classical mask on clinical geometries (tests/factories/lung_geometries.py) against
the generator's known lungs, its sides in patient coordinates, and the lungmask R231 wiring and fallback.

Per-geometry Dice figures: scripts/benchmarks/lung_mask.py (docs/datasets.md, "Lung cropping").
"""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.datasets import lung_mask
from nnunet_ts.datasets.lung_crop import LungMask, paste_back, plan_crops
from nnunet_ts.datasets.lung_mask import (
    LEFT,
    RIGHT,
    ClassicalSettings,
    LungMaskFallbackWarning,
    classical_lung_mask,
    compute_lung_mask,
    lungmask_weights,
)
from nnunet_ts.synth import SynthConfig, generate_case
from nnunet_ts.synth.anatomy import Tissue
from tests.factories.lung_geometries import CONFIG, GEOMETRIES, make_scans

SEEDS = (0, 1, 2)
_scans: dict[int, dict] = {}


def scans_of(seed: int) -> dict:
    """All geometries of one seed, made once per test session."""
    if seed not in _scans:
        _scans[seed] = {scan.name: scan for scan in make_scans(seed)}
    return _scans[seed]


def mask_of(scan, settings=None) -> np.ndarray:
    g = scan.geometry
    return classical_lung_mask(scan.ct, g.direction, g.spacing, g.origin, settings)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture
def fresh_announcements(monkeypatch):
    """A process that has not announced the lungmask fallback yet."""
    monkeypatch.setattr(lung_mask, "_announced", set())


def image_of(ct, geometry):
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_classical_mask_finds_the_lungs_of_clinical_geometries(geometry, seed):
    scan = scans_of(seed)[geometry]
    labels = mask_of(scan)
    assert dice(labels > 0, scan.lungs) >= 0.95
    plan = plan_crops(LungMask(labels, "classical"), scan.geometry, margin_mm=10.0)
    assert tuple(c.side for c in plan.crops) == scan.sides
    # --crop-lungs keeps every tumour: each tumour voxel lies in a crop
    covered = paste_back([np.ones(c.shape_zyx, np.uint8) for c in plan.crops], plan) > 0
    assert covered[scan.mask > 0].all()
    if scan.gas is not None:  # stomach and bowel gas are not lung
        assert scan.gas.sum() * np.prod(scan.geometry.spacing) > 20_000 and not (labels > 0)[scan.gas].any()


def test_tumours_against_the_chest_wall_and_mediastinum_are_mostly_in_the_mask():
    # seed 1: tumours of 32 and 49 mm on the chest wall, 22 mm on the mediastinum
    scan = scans_of(1)["full"]
    assert {"chest_wall", "mediastinum"} <= {les.attachment for les in generate_case(1, CONFIG).lesions}
    inside = (mask_of(scan) > 0)[scan.mask > 0].mean()
    assert inside >= 0.6
    # without the closing only the tumour parts enclosed by lung in some plane are filled
    assert (mask_of(scan, ClassicalSettings(closing_mm=0.0)) > 0)[scan.mask > 0].mean() < inside - 0.2


def test_trachea_and_main_bronchi_are_removed():
    case = generate_case(0, CONFIG)
    g = case.geometry
    airway = case.tissue == Tissue.AIRWAY
    kept = classical_lung_mask(case.ct, g.direction, g.spacing, g.origin) > 0
    assert airway.sum() > 300 and kept[airway].mean() < 0.15
    # with no airway threshold (nothing is darker than -1100 HU) the trachea stays in the mask
    no_airway = ClassicalSettings(airway_hu=-1100.0, airway_floor_hu=-1100.0)
    assert (classical_lung_mask(case.ct, g.direction, g.spacing, g.origin, no_airway) > 0)[airway].mean() > 0.9


def test_sides_come_from_patient_coordinates():
    scan = scans_of(0)["full"]
    labels = mask_of(scan)
    # identity direction, LPS: the patient's right lung has the small x indices
    xs_right, xs_left = np.nonzero(labels == RIGHT)[2], np.nonzero(labels == LEFT)[2]
    assert xs_right.mean() < scan.ct.shape[2] / 2 < xs_left.mean()
    # flipping the x axis of the direction swaps the sides in index space, not in the patient (up to
    # the voxels on the plane between the lungs)
    g = scan.geometry
    flipped = classical_lung_mask(scan.ct, (-1, 0, 0, 0, 1, 0, 0, 0, 1), g.spacing, g.origin)
    assert dice(flipped == LEFT, labels == RIGHT) > 0.995 and dice(flipped == RIGHT, labels == LEFT) > 0.995
    # one lung, FOV through the mediastinum: the scanner's isocentre (patient x = 0) tells the side;
    # moved 400 mm to the patient's left the same lung is called left
    one = scans_of(0)["one_lung_fov"]
    shifted = (one.geometry.origin[0] + 400.0, *one.geometry.origin[1:])
    assert set(np.unique(mask_of(one))) == {0, RIGHT}
    assert set(np.unique(classical_lung_mask(one.ct, one.geometry.direction, one.geometry.spacing, shifted))) == \
        {0, LEFT}


def test_a_patient_lying_on_the_side_still_has_two_whole_lungs():
    # the arrays of the full scan, their x axis along the patient's front-back: lungs one above the other
    scan = scans_of(2)["full"]
    labels = classical_lung_mask(scan.ct, (0, 1, 0, -1, 0, 0, 0, 0, 1), scan.geometry.spacing)
    assert dice(labels > 0, scan.lungs) >= 0.95
    truth_right = scan.lungs & (np.arange(scan.ct.shape[2]) < scan.ct.shape[2] / 2)[None, None, :]
    found = {v: dice(labels == v, truth_right) for v in (RIGHT, LEFT)}
    assert max(found.values()) > 0.95 and min(found.values()) < 0.05   # each lung whole, under one label


def test_padding_stored_as_air_is_not_taken_for_air():
    # the reconstruction circle's padding written as -1024 HU: one value in every slice, unlike real air
    scan = scans_of(0)["tight_circle"]
    padding = scan.ct == -3024
    assert padding.sum() > 0.1 * padding.size
    as_air = np.where(padding, -1024, scan.ct).astype(np.int16)
    g = scan.geometry
    assert dice(classical_lung_mask(as_air, g.direction, g.spacing, g.origin) > 0, scan.lungs) >= 0.95


def test_slice_order_does_not_matter():
    # the same scan stored head first (z index towards the feet): "above" is read from the direction
    scan = scans_of(0)["bases_only"]
    g, nz = scan.geometry, scan.ct.shape[0]
    origin = (*g.origin[:2], g.origin[2] + (nz - 1) * g.spacing[2])
    head_first = classical_lung_mask(scan.ct[::-1].copy(), (1, 0, 0, 0, 1, 0, 0, 0, -1), g.spacing, origin)
    assert np.array_equal(head_first[::-1], mask_of(scan))


def test_no_air_inside_a_body_gives_an_empty_mask():
    soft = np.full((8, 40, 40), 40, np.int16)
    soft[:, :, :4] = -1000                       # air beside the body only
    assert not classical_lung_mask(soft, spacing=(3.0, 3.0, 5.0)).any()
    assert not classical_lung_mask(np.full((8, 40, 40), -1000, np.int16)).any()


def test_classical_settings_reject_inconsistent_values():
    with pytest.raises(ValueError, match="airway_floor_hu"):
        ClassicalSettings(airway_hu=-990.0, airway_floor_hu=-950.0)
    with pytest.raises(ValueError, match="closing_mm"):
        ClassicalSettings(closing_mm=-1.0)


def test_lungmask_r231_is_loaded_from_a_local_state_dict(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("lungmask")
    from lungmask.resunet import UNet

    case = generate_case(5, SynthConfig.compact((24, 64, 64)))
    # the network lungmask.mask.get_model builds for R231 (3 classes), random weights
    torch.manual_seed(0)
    net = UNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True, residual=False)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(net.state_dict(), cache / "unet_r231-d5d2fc3d.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert lungmask_weights() == cache / "unet_r231-d5d2fc3d.pth"  # lungmask's own cache is found
    small = image_of(case.ct, case.geometry)[:, :, 10:13]  # 3 slices keep the CPU inference short
    result = compute_lung_mask(small)
    assert result.method == "lungmask-R231" and result.warning is None
    assert result.labels.shape == (3, 64, 64) and set(np.unique(result.labels)) <= {0, 1, 2}


def test_missing_lungmask_weights_fall_back_loudly_once(tmp_path, monkeypatch, capsys, fresh_announcements):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty"))
    scan = scans_of(0)["tight_left_right"]
    image = image_of(scan.ct, scan.geometry)
    with pytest.warns(LungMaskFallbackWarning, match="classical") as caught:
        first = compute_lung_mask(image)
        second = compute_lung_mask(image)        # a second case of the same command: recorded, not repeated
    assert len(caught) == 1 and capsys.readouterr().err.count("WARNING") == 1
    for result in (first, second):
        assert result.method == "classical" and "no lungmask R231 weights" in result.warning
        assert str(tmp_path / "empty") in result.warning   # where it looked
    assert dice(first.labels > 0, scan.lungs) >= 0.95   # the tight FOV of the scan, through SimpleITK
    plan = plan_crops(first, scan.geometry)
    assert plan.method == "classical" and plan.warning == first.warning
