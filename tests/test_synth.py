"""Synthetic thorax CT generator: determinism, geometry, HU model, tumours, cohort files, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from nnunet_ts.boxes.segbox import rectangles_to_segbox, slice_rectangles
from nnunet_ts.errors import InputError
from nnunet_ts.io.boxes_file import load_rectangles
from nnunet_ts.io.images import read_image
from nnunet_ts.io.manifest import read_manifest
from nnunet_ts.synth import SynthConfig, case_seed, generate_case, write_cohort
from nnunet_ts.synth import writer as synth_writer
from nnunet_ts.synth.anatomy import Tissue

SHAPE = (24, 48, 48)
CONFIG = SynthConfig.compact(SHAPE)
SEEDS = range(12)


@pytest.fixture(scope="module")
def cases():
    return [generate_case(seed, CONFIG) for seed in SEEDS]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """3 strong, 2 weak, 2 test cases written with two worker processes."""
    out = tmp_path_factory.mktemp("cohort") / "synth"
    records = write_cohort(out, 3, 2, 2, seed=5, config=CONFIG, workers=2, progress=False)
    return out, records


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_case():
    a, b = generate_case(3, CONFIG), generate_case(3, CONFIG)
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.mask, b.mask)
    assert a.geometry == b.geometry and a.lesions == b.lesions


def test_different_seeds_give_different_cases():
    a, b = generate_case(3, CONFIG), generate_case(4, CONFIG)
    assert a.geometry != b.geometry
    assert np.mean(a.ct != b.ct) > 0.5


def test_cases_do_not_depend_on_cohort_size(tmp_path, cohort):
    out, _ = cohort
    small = write_cohort(tmp_path / "small", 1, 1, 0, seed=5, config=CONFIG, workers=1, progress=False)
    for record in small:
        ct_small, _ = read_image(record.ct)
        ct_big, _ = read_image(out / record.ct.name)
        assert np.array_equal(ct_small, ct_big), record.case_id
    # ... and both equal the case generated alone from its derived seed.
    alone = generate_case(case_seed(5, 1), CONFIG)
    assert np.array_equal(read_image(small[1].ct)[0], alone.ct)
    assert small[1].subset == "weak" and read_manifest(out)[1].subset == "strong"


def test_case_seeds_are_distinct_and_stable():
    seeds = [case_seed(0, i) for i in range(200)] + [case_seed(1, i) for i in range(200)]
    assert len(set(seeds)) == len(seeds)
    assert case_seed(0, 7) == case_seed(0, 7)


# ---------------------------------------------------------------------------------------------
# Geometry


def test_geometry_follows_the_config(cases):
    for case in cases:
        g = case.geometry
        assert g.shape_zyx == SHAPE and case.ct.shape == SHAPE and case.mask.shape == SHAPE
        sx, sy, sz = g.spacing
        assert sx == sy
        assert CONFIG.spacing_xy_mm[0] - 1e-3 <= sx <= CONFIG.spacing_xy_mm[1] + 1e-3
        assert CONFIG.slice_thickness_mm[0] - 1e-3 <= sz <= CONFIG.slice_thickness_mm[1] + 1e-3
        assert g.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert len({c.geometry.spacing for c in cases}) == len(cases)     # spacing varies per case
    assert len({c.geometry.origin for c in cases}) == len(cases)


def test_compact_preset_fits_a_thorax_and_clinical_preset_uses_clinical_spacing():
    compact = SynthConfig.compact((96, 128, 128))
    fov = [128 * s for s in compact.spacing_xy_mm]
    assert fov == pytest.approx([320.0, 450.0])
    assert [96 * t for t in compact.slice_thickness_mm] == pytest.approx([160.0, 300.0])
    clinical = SynthConfig.clinical()
    assert clinical.shape_zyx == (128, 512, 512) and clinical.spacing_xy_mm == (0.6, 1.0)
    assert 1.0 <= clinical.slice_thickness_mm[0] <= clinical.slice_thickness_mm[1] <= 5.0
    assert SynthConfig() == SynthConfig.compact((64, 128, 128))


def test_files_share_the_case_geometry(cohort):
    out, records = cohort
    for record in records:
        ct, ct_geo = read_image(record.ct)
        mask, mask_geo = read_image(record.mask)
        assert ct.dtype == np.int16 and mask.dtype == np.uint8
        assert ct_geo.mismatch(mask_geo) is None
        info = next(i for i in json.loads((out / "lesions.json").read_text()) if i["case_id"] == record.case_id)
        assert ct_geo.spacing == pytest.approx(info["spacing_xyz_mm"], abs=1e-4)
        assert ct_geo.origin == pytest.approx(info["origin_xyz_mm"], abs=1e-3)
        assert np.array_equal(ct, generate_case(info["seed"], CONFIG).ct)


# ---------------------------------------------------------------------------------------------
# HU model


def _interior(case, tissue: Tissue) -> np.ndarray:
    """Voxels of a tissue away from its in-plane border (free of partial volume with neighbours)."""
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    return ndimage.binary_erosion(case.tissue == tissue, cross)


@pytest.mark.parametrize("tissue, low, high", [
    (Tissue.AIR, -1010, -990),
    (Tissue.LUNG, -910, -790),
    (Tissue.FAT, -135, -70),
    (Tissue.MUSCLE, 30, 60),
    (Tissue.LIVER, 40, 75),
])
def test_tissue_medians(cases, tissue, low, high):
    medians = [float(np.median(c.ct[_interior(c, tissue)])) for c in cases if _interior(c, tissue).sum() > 30]
    assert len(medians) >= len(cases) // 2
    assert low <= min(medians) and max(medians) <= high, medians


def test_hu_range_bone_and_dtype(cases):
    for case in cases:
        assert case.ct.dtype == np.int16
        assert case.ct.min() >= -1024 and case.ct.max() <= 3071
        bone = case.ct[np.isin(case.tissue, (Tissue.BONE_CORTEX, Tissue.BONE_MARROW))]
        assert np.percentile(bone, 75) > 400
        assert np.percentile(bone, 99) > 600          # cortex, even blurred at 7-9 mm voxels


def test_lungs_are_two_dark_fields_beside_the_mediastinum(cases):
    for case in cases:
        z = SHAPE[0] // 2
        lungs = case.lungs[z]
        _, n = ndimage.label(lungs)
        assert n >= 2, case.seed
        cols = np.flatnonzero(lungs.any(axis=0))
        middle = SHAPE[2] // 2
        assert cols.min() < middle - 5 and cols.max() > middle + 5
        # Midline column at mid-height: mediastinum/spine, not lung, between the two lungs.
        assert not lungs[SHAPE[1] // 2 - 2:SHAPE[1] // 2 + 3, middle].all()


def test_vessels_make_tumour_like_hu_inside_the_lungs():
    case = generate_case(1, SynthConfig.compact((48, 96, 96), tumour_count_probs=(1.0, 0.0, 0.0, 0.0)))
    lung_ct = case.ct[case.lungs]
    assert (lung_ct > -500).mean() > 0.01       # vessel voxels, partial volume included
    assert (lung_ct > -100).sum() > 30          # and vessel cores in the tumour HU range


# ---------------------------------------------------------------------------------------------
# Tumours


def test_tumour_count_diameters_and_mask(cases):
    counts = []
    for case in cases:
        assert case.mask.dtype == np.uint8 and set(np.unique(case.mask)) <= {0, 1}
        labels, n = cc3d.connected_components(case.mask, connectivity=26, return_N=True)
        assert n == len(case.lesions) <= 3
        counts.append(n)
        assert not np.any(case.mask.astype(bool) & ~case.lungs), "tumour outside the lung field"
        spacing = np.asarray(case.geometry.spacing_zyx)
        for lesion in case.lesions:
            assert 5.0 <= lesion.diameter_mm <= 60.0
            assert 0.0 <= lesion.hu <= 60.0
            component = labels == labels[lesion.centre_zyx]
            assert labels[lesion.centre_zyx] > 0 and component.sum() == lesion.n_voxels
            extent = (np.ptp(np.argwhere(component), axis=0)) * spacing
            assert np.all(extent <= lesion.diameter_mm + 1e-6)
    assert sum(c >= 1 for c in counts) >= 0.6 * len(counts)


@pytest.mark.parametrize("probs, expected", [((1.0, 0.0, 0.0, 0.0), 0), ((0.0, 0.0, 0.0, 1.0), 3)])
def test_tumour_count_distribution_is_configurable(probs, expected):
    config = SynthConfig.compact(SHAPE, tumour_count_probs=probs)
    for seed in range(4):
        case = generate_case(seed, config)
        assert len(case.lesions) == expected
        assert cc3d.connected_components(case.mask, return_N=True)[1] == expected


def test_attached_tumours_touch_their_neighbour():
    config = SynthConfig.compact(SHAPE, tumour_count_probs=(0.0, 0.0, 0.0, 1.0),
                                 tumour_attach_probs=(0.0, 0.5, 0.5))
    neighbours = {"chest_wall": (Tissue.FAT, Tissue.MUSCLE, Tissue.BONE_CORTEX, Tissue.BONE_MARROW),
                  "mediastinum": (Tissue.MEDIASTINAL_FAT, Tissue.HEART, Tissue.GREAT_VESSEL, Tissue.AIRWAY)}
    seen = set()
    for seed in range(4):
        case = generate_case(seed, config)
        labels = cc3d.connected_components(case.mask, connectivity=26)
        for lesion in case.lesions:
            if lesion.attachment == "free":
                continue
            seen.add(lesion.attachment)
            component = labels == labels[lesion.centre_zyx]
            shell = ndimage.binary_dilation(component, np.ones((3, 3, 3), bool)) & ~component
            assert np.isin(case.tissue[shell], neighbours[lesion.attachment]).any(), (seed, lesion)
    assert seen == {"chest_wall", "mediastinum"}


def _single_tumour(edge_sigma_mm: float):
    config = SynthConfig.compact((48, 96, 96), tumour_count_probs=(0.0, 1.0, 0.0, 0.0),
                                 tumour_diameter_mm=(40.0, 40.0), tumour_attach_probs=(1.0, 0.0, 0.0),
                                 noise_sigma_hu=(0.0, 0.0), tumour_edge_sigma_mm=(edge_sigma_mm, edge_sigma_mm))
    return generate_case(2, config)


def test_tumour_hu_inside_and_blurred_edge():
    sharp, blurred = _single_tumour(0.5), _single_tumour(2.0)
    assert np.array_equal(sharp.mask, blurred.mask)          # the mask is the shape before blurring
    inside = sharp.ct[ndimage.binary_erosion(sharp.mask, iterations=1)]
    assert abs(float(np.median(inside)) - sharp.lesions[0].hu) < 25

    def ring_mean(case) -> float:
        ring = ndimage.binary_dilation(case.mask, iterations=1) & ~case.mask.astype(bool) & case.lungs
        return float(np.mean(case.ct[ring]))

    # Just outside the mask the blurred edge is brighter than the sharp one, still below the tumour.
    assert ring_mean(sharp) + 20 < ring_mean(blurred) < blurred.lesions[0].hu


# ---------------------------------------------------------------------------------------------
# Cohort files


def test_cohort_files_and_boxes_match_the_masks(cohort):
    out, records = cohort
    assert {p.name for p in out.iterdir()} == {
        "cases.csv", "lesions.json", "synth.json",
        *(f"synth_{i:04d}_{kind}" for i in range(7) for kind in ("ct.nii.gz", "mask.nii.gz", "boxes.json"))}
    for record in records:
        mask, _ = read_image(record.mask)
        rects, shape = load_rectangles(record.boxes)
        assert shape == mask.shape
        assert rects == slice_rectangles(mask, "per_lesion")
        segbox = rectangles_to_segbox(rects, shape)
        assert np.all(segbox >= mask)
        assert {r.z for r in rects} == set(np.flatnonzero(mask.any(axis=(1, 2))))
    settings = json.loads((out / "synth.json").read_text())
    assert settings["seed"] == 5 and tuple(settings["config"]["shape_zyx"]) == SHAPE


def test_manifest_subsets_and_patients(cohort):
    out, records = cohort
    manifest = read_manifest(out)
    assert [r.case_id for r in manifest] == [f"synth_{i:04d}" for i in range(7)]
    assert [r.subset for r in manifest] == ["strong"] * 3 + ["weak"] * 2 + ["test"] * 2
    assert [r.ct.resolve() for r in manifest] == [r.ct.resolve() for r in records]
    subsets_of = {}
    for r in manifest:
        subsets_of.setdefault(r.patient_id, set()).add(r.subset)
    assert all(len(s) == 1 for s in subsets_of.values())


def test_two_scans_per_patient_grouped_within_subsets(tmp_path):
    config = SynthConfig.compact(SHAPE, scans_per_patient=(0.0, 1.0))
    records = write_cohort(tmp_path / "c", 3, 2, 1, seed=0, config=config, workers=1, progress=False)
    patients = [r.patient_id for r in records]
    # strong: [p0, p0, p1], weak: [p2, p2], test: [p3]
    assert patients == [patients[0]] * 2 + [patients[2]] + [patients[3]] * 2 + [patients[5]]
    assert len(set(patients)) == 4


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_refuses_non_empty_folder_without_overwrite(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"cohort.*not empty.*--overwrite"):
        write_cohort(out, 1, 0, 0, config=CONFIG, workers=1, progress=False)
    # Overwriting a folder that is not a cohort is refused too, and nothing is deleted.
    with pytest.raises(InputError, match="does not\\s+look like a cohort"):
        write_cohort(out, 1, 0, 0, config=CONFIG, overwrite=True, workers=1, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    assert _leftovers(tmp_path, "cohort") == []


def test_overwrite_replaces_a_cohort_without_leftovers(tmp_path):
    out = tmp_path / "cohort"
    write_cohort(out, 1, 1, 0, seed=0, config=CONFIG, workers=1, progress=False)
    first = read_image(out / "synth_0000_ct.nii.gz")[0]
    records = write_cohort(out, 1, 0, 0, seed=1, config=CONFIG, overwrite=True, workers=1, progress=False)
    assert len(records) == 1 and not (out / "synth_0001_ct.nii.gz").exists()
    assert not np.array_equal(first, read_image(out / "synth_0000_ct.nii.gz")[0])
    assert _leftovers(tmp_path, "cohort") == []


def test_failure_leaves_no_cohort_and_the_rerun_resumes(tmp_path, monkeypatch):
    real, calls, fail = synth_writer._make_case, [], {"at": 1}

    def flaky(task):
        calls.append(task.index)
        if task.index == fail["at"]:
            raise RuntimeError("disk full")
        return real(task)

    monkeypatch.setattr(synth_writer, "_make_case", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        write_cohort(tmp_path / "cohort", 2, 1, 0, config=CONFIG, workers=1, progress=False)
    assert calls == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == [".cohort.partial"]  # no cohort, only the work folder

    calls.clear()
    fail["at"] = None
    write_cohort(tmp_path / "cohort", 2, 1, 0, config=CONFIG, workers=1, progress=False)
    assert calls == [1, 2]  # case 0 was finished before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
    write_cohort(tmp_path / "fresh", 2, 1, 0, config=CONFIG, workers=1, progress=False)
    for name in ("cases.csv", "lesions.json", "synth_0000_boxes.json", "synth_0002_boxes.json"):
        assert (tmp_path / "cohort" / name).read_text().replace("cohort", "fresh") == \
            (tmp_path / "fresh" / name).read_text().replace("cohort", "fresh")
    for i in range(3):
        a, _ = read_image(tmp_path / "cohort" / f"synth_{i:04d}_ct.nii.gz")
        b, _ = read_image(tmp_path / "fresh" / f"synth_{i:04d}_ct.nii.gz")
        assert np.array_equal(a, b)


def test_other_settings_do_not_reuse_an_interrupted_cohort(tmp_path, monkeypatch):
    real, calls = synth_writer._make_case, []

    def stop_after_first(task):
        calls.append(task.index)
        if task.index == 1:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(synth_writer, "_make_case", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        write_cohort(tmp_path / "cohort", 2, 0, 0, seed=0, config=CONFIG, workers=1, progress=False)
    monkeypatch.setattr(synth_writer, "_make_case", lambda task: calls.append(task.index) or real(task))
    calls.clear()
    write_cohort(tmp_path / "cohort", 2, 0, 0, seed=1, config=CONFIG, workers=1, progress=False)
    assert calls == [0, 1]


@pytest.mark.parametrize("counts", [(0, 0, 0), (-1, 2, 0)])
def test_bad_counts_are_input_errors(tmp_path, counts):
    with pytest.raises(InputError, match="case counts"):
        write_cohort(tmp_path / "c", *counts, config=CONFIG, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------
# Config validation and CLI


@pytest.mark.parametrize("kwargs, message", [
    ({"tumour_count_probs": (0.5, 0.6)}, "tumour_count_probs"),
    ({"spacing_xy_mm": (1.0, 0.5)}, "spacing_xy_mm"),
    ({"tumour_attach_probs": (0.5, 0.5)}, "tumour_attach_probs"),
    ({"shape_zyx": (4, 64, 64)}, "shape_zyx"),
    ({"lung_hu": (-1100.0, -800.0)}, "lung_hu"),
    ({"tumour_diameter_sampling": "normal"}, "tumour_diameter_sampling"),
])
def test_config_rejects_inconsistent_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_cli_writes_a_cohort_and_refuses_to_overwrite(tmp_path, capsys):
    from nnunet_ts.cli.main import main

    out = tmp_path / "cli"
    argv = ["synth", str(out), "--n-strong", "1", "--n-weak", "1", "--n-test", "0", "--shape", "16", "32", "32",
            "--workers", "1", "--seed", "2"]
    assert main(argv) == 0
    assert len(read_manifest(out)) == 2
    capsys.readouterr()
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and str(out) in err
    assert main(argv + ["--overwrite"]) == 0


def test_cli_help_describes_outputs(capsys):
    from nnunet_ts.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("cases.csv", "_mask.nii.gz", "_boxes.json", "HU", "--overwrite", "clinical"):
        assert word in text


def test_uniform_diameters_give_larger_tumours_than_log_uniform():
    # Same seeds, same anatomy: only how the nominal diameter is drawn differs.
    def mean_diameter(sampling: str) -> float:
        config = SynthConfig.compact((24, 48, 48))
        config = SynthConfig(**{**config.__dict__, "tumour_diameter_sampling": sampling})
        diameters = [lesion.diameter_mm for seed in range(12) for lesion in generate_case(seed, config).lesions]
        return float(np.mean(diameters))

    assert mean_diameter("uniform") > mean_diameter("log-uniform") + 5.0
