"""DICOM series grouping and stack checks on real-format series (pydicom-written, see
nnunet_ts.synth.dicom_export): anonymised series without UIDs, compressed transfer syntaxes, mixed
orientation, gantry tilt, duplicate and missing slices. Our reader must equal SimpleITK's
``ImageSeriesReader`` (GDCM) in geometry and voxels."""
import re
import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from nnunet_ts.cli.main import main
from nnunet_ts.errors import EXIT_BAD_INPUT, InputError, InputWarning
from nnunet_ts.io.dicom import NO_UID_PREFIX, choose_ct_series, ct_exclusion_reason, discover_series, read_ct
from nnunet_ts.synth.dicom_export import SeriesSpec, rotation, write_series
from tests.factories.stock import MODEL_LOAD_REACHED

SHAPE = (6, 12, 10)  # z, y, x
SPACING = (0.8, 0.7, 2.5)  # x, y, z mm


def spec(rng, **kw) -> SeriesSpec:
    hu = 2 * rng.integers(-500, 300, size=SHAPE) - 24  # exact with slope 2, intercept -1024
    return SeriesSpec(hu=hu.astype(float), spacing=SPACING, origin=(-120.5, 33.25, -410.0),
                      direction=rotation(), slope=2.0, intercept=-1024.0, **kw)


def rewrite(folder, edit):
    """Apply ``edit(ds, index)`` to every file of a folder (sorted by name) and save it."""
    for i, path in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(path)
        edit(ds, i)
        ds.save_as(path)


def blank_uids(ds, _):
    for tag in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID"):
        setattr(ds, tag, "")
    ds.file_meta.MediaStorageSOPInstanceUID = ""


def encoder(syntax):
    """Re-encode PixelData losslessly: RLE with pydicom's own encoder, JPEG 2000 / JPEG-LS with
    imagecodecs (installed with nnU-Net); pydicom alone cannot write those two here."""
    if syntax == RLELossless:
        return lambda ds, _: ds.compress(RLELossless, encoding_plugin="pydicom")
    imagecodecs = pytest.importorskip("imagecodecs")
    encode = {JPEG2000Lossless: lambda a: imagecodecs.jpeg2k_encode(a, level=0, codecformat="J2K", reversible=True),
              JPEGLSLossless: lambda a: imagecodecs.jpegls_encode(a, level=0)}[syntax]

    def edit(ds, _):
        frame = encode(ds.pixel_array)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    return edit


def sitk_reference(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_equals_simpleitk(image, folder, hu):
    reference = sitk_reference(folder)
    assert image.GetSize() == reference.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(image, get)(), getattr(reference, get)(), atol=1e-9)
    np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)


@pytest.mark.parametrize("variant", ["plain", "blank_uids", RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_series_read_like_simpleitk(tmp_path, variant):
    rng = np.random.default_rng(0)
    s = spec(rng)
    write_series(tmp_path / "ct", s, rng)
    if variant == "blank_uids":
        rewrite(tmp_path / "ct", blank_uids)
    elif variant != "plain":
        rewrite(tmp_path / "ct", encoder(variant))
        assert pydicom.dcmread(next((tmp_path / "ct").iterdir())).file_meta.TransferSyntaxUID == variant
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [series] = discover_series(tmp_path)
    assert series.uid_missing == (variant == "blank_uids")
    assert any(issubclass(w.category, InputWarning) for w in caught) == (variant == "blank_uids")
    if variant == "blank_uids":
        assert series.series_uid.startswith(NO_UID_PREFIX) and "have no SeriesInstanceUID" in str(caught[0].message)
    assert ct_exclusion_reason(series) is None
    assert_equals_simpleitk(read_ct(series), tmp_path / "ct", s.hu)


@pytest.mark.xdist_group("ct_model")
def test_blank_uid_series_are_split_by_geometry_and_chosen_by_their_made_up_uid(tmp_path, capsys, unloaded_model):
    rng = np.random.default_rng(1)
    first = spec(rng)
    write_series(tmp_path / "a", first, rng)
    other = spec(rng)
    other.spacing = (0.6, 0.6, 2.5)  # another reconstruction of the same patient
    write_series(tmp_path / "b", other, rng)
    rewrite(tmp_path / "a", blank_uids)
    rewrite(tmp_path / "b", blank_uids)
    with pytest.warns(InputWarning, match=r"12 DICOM file\(s\) .* into 2 series"):
        series = discover_series(tmp_path)
    assert len(series) == 2 and all(len(s.files) == SHAPE[0] for s in series)
    assert {s.folder.name for s in series} == {"a", "b"}  # files were grouped by geometry, not folder
    with pytest.warns(InputWarning), pytest.raises(InputError, match="holds 2 CT series: no-uid-"):
        choose_ct_series(tmp_path)
    wanted = next(s for s in series if s.folder.name == "a")
    with pytest.warns(InputWarning):
        chosen = choose_ct_series(tmp_path, wanted.series_uid)
    assert_equals_simpleitk(read_ct(chosen), tmp_path / "a", first.hu)
    # the real command: two scans need an OUTPUT folder; --series-uid reads the chosen one, then the model
    argv = ["predict", str(tmp_path), str(tmp_path / "out.nii.gz"), "-m", str(unloaded_model)]
    assert main(argv) == EXIT_BAD_INPUT
    assert "holds 2 scans; OUTPUT must then be a folder" in capsys.readouterr().err
    assert main(argv + ["--series-uid", wanted.series_uid]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "CT series" not in err and MODEL_LOAD_REACHED in err


def _tilt(ds, _):
    # move every slice sideways by 0.5 x its offset along the normal: a 26.6 degree gantry tilt
    normal = rotation()[:, 2]
    p = np.asarray(ds.ImagePositionPatient, float)
    along = float(np.dot(p - np.array([-120.5, 33.25, -410.0]), normal))
    ds.ImagePositionPatient = [f"{v:.6f}" for v in p + 0.5 * along * rotation()[:, 1]]


def _drop_orientation_of_first(ds, i):
    if i == 0:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]


def _duplicate_position(ds, i):
    if i == 1:
        ds.ImagePositionPatient = pydicom.dcmread(sorted(ds.filename.parent.iterdir())[0]).ImagePositionPatient


def _second_size(ds, i):
    if i == 0:
        ds.Rows, ds.Columns = SHAPE[1] // 2, SHAPE[2] * 2


# (name, edit, remove a slice?, expected message)
STACK_FAULTS = [
    ("mixed orientation", _drop_orientation_of_first, False, r"2 different orientations"),
    ("different sizes", _second_size, False, r"differ in size \(rows x columns: 6x20, 12x10\)"),
    ("gantry tilt", _tilt, False, r"move 6\.25 mm sideways across the stack \(gantry tilt about 26\.6 degrees"),
    ("duplicate position", _duplicate_position, False, r"1 slice\(s\) lie at the position of another"),
    ("missing slice", None, True, r"not uniform \(2\.50-5\.00 mm.*slices are missing"),
]


@pytest.mark.parametrize("name, edit, drop, message", STACK_FAULTS, ids=[f[0] for f in STACK_FAULTS])
@pytest.mark.xdist_group("ct_model")
def test_irregular_stacks_are_refused_with_the_reason(tmp_path, capsys, name, edit, drop, message, unloaded_model):
    rng = np.random.default_rng(2)
    written = write_series(tmp_path / "ct", spec(rng), rng)
    if drop:
        written.files[3].unlink()  # a middle slice
    if edit is not None:
        def with_name(ds, i):
            ds.filename = sorted((tmp_path / "ct").iterdir())[i]
            edit(ds, i)
        rewrite(tmp_path / "ct", with_name)
    [series] = discover_series(tmp_path)
    assert ct_exclusion_reason(series) is None  # a CT series, but not a regular stack
    with pytest.raises(InputError, match=message):
        read_ct(series)
    # the real command: one line, exit 3, before any model is loaded
    code = main(["predict", str(tmp_path / "ct"), str(tmp_path / "out.nii.gz"), "-m", str(unloaded_model)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and re.search(message, err) and "Traceback" not in err
    assert MODEL_LOAD_REACHED not in err


def test_no_dicom_message_counts_what_was_found(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(InputError, match=r"no DICOM file found under .*: 3 file\(s\), 2 not DICOM "
                                         r"\(e\.g\. empty\.dcm\), 1 index or annotation file"):
        discover_series(tmp_path)
    code = main(["predict", str(tmp_path), str(tmp_path / "out.nii.gz"), "-m", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "no DICOM file found" in err and "Traceback" not in err


def test_no_usable_series_message_lists_each_series_and_why(tmp_path, capsys):
    rng = np.random.default_rng(3)
    write_series(tmp_path / "pet", spec(rng, modality="PT", sop_class="1.2.840.10008.5.1.4.1.1.128"), rng)
    single = spec(rng)
    single.hu = single.hu[:1]
    write_series(tmp_path / "one", single, rng)
    with pytest.raises(InputError, match=r"holds 7 DICOM file\(s\) in 2 series, none a usable CT volume: ") as error:
        choose_ct_series(tmp_path)
    assert "(PT, 6 file(s)): not CT (PET)" in str(error.value)
    assert "(CT, 1 file(s)): 1 slice(s), not a volume" in str(error.value)
    # the real command: each series left out, with its reason
    assert main(["predict", str(tmp_path), str(tmp_path / "out.nii.gz"), "-m", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "holds no CT scan" in err and "not CT (PET)" in err and "1 slice(s), not a volume" in err


def test_file_without_preamble_is_still_dicom(tmp_path):
    rng = np.random.default_rng(5)
    s = spec(rng)
    written = write_series(tmp_path / "ct", s, rng)
    for path in written.files:  # drop the 128-byte preamble and 'DICM' + file meta, as some exporters do
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)
        raw = path.read_bytes()
        assert raw[128:132] != b"DICM"
    [series] = discover_series(tmp_path)
    assert_equals_simpleitk(read_ct(series), tmp_path / "ct", s.hu)


@pytest.mark.xdist_group("ct_model")
def test_predict_reads_an_anonymised_series_without_uids(tmp_path, capsys, unloaded_model):
    from nnunet_ts.inference.predict import read_ct_input

    rng = np.random.default_rng(6)
    s = spec(rng)
    write_series(tmp_path / "ct", s, rng)
    rewrite(tmp_path / "ct", blank_uids)
    with pytest.warns(InputWarning, match="no SeriesInstanceUID"):
        image = read_ct_input(tmp_path)
    assert_equals_simpleitk(image, tmp_path / "ct", s.hu)
    # the command reads the CT (one warning line) and only then reaches the model
    code = main(["predict", str(tmp_path / "ct"), str(tmp_path / "out.nii.gz"), "-m", str(unloaded_model)])
    err = capsys.readouterr().err
    assert f"nnunet_ts predict: warning: 6 DICOM file(s) under {tmp_path / 'ct'} have no SeriesInstanceUID" in err
    assert code == EXIT_BAD_INPUT and "no DICOM file" not in err and MODEL_LOAD_REACHED in err
