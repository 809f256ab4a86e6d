"""``nnunet_ts predict --boxes``: a box-guided teacher segments a CT from a reader's boxes, exactly as
stock ``nnUNetv2_predict`` + ``nnunet_ts restrict-to-box``; the box files it reads and the forms it refuses."""
import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.boxes.segbox import SliceRectangle, segbox_from_mask
from nnunet_ts.cli.main import main
from nnunet_ts.errors import InputError
from nnunet_ts.evaluation.metrics import dice
from nnunet_ts.inference.box_prompt import (
    BoxPrompt,
    box3d_segbox,
    interpolate_rectangles,
    prompt_segbox,
    read_box_prompt,
)
from nnunet_ts.inference.model_package import read_model_info
from nnunet_ts.io.boxes_file import save_rectangles
from nnunet_ts.io.images import read_image
from tests.factories.stock import prefix, requires_nnunet, run

pytestmark = pytest.mark.xdist_group("box_teacher_model")


def _image(shape_zyx, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    image = sitk.GetImageFromArray(np.zeros(shape_zyx, np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, float).reshape(-1)))
    return image


@requires_nnunet
def test_predict_boxes_equals_stock_predict_then_restrict_to_box(box_teacher_model, tmp_path):
    model = box_teacher_model  # BoxTeacherTrainer, folds 0 and 1, per_lesion segboxes (tests/conftest.py)
    assert read_model_info(model.folder).segbox_form == "per_lesion"  # from its dataset.json
    assert main(["model", "export", str(model.folder), "-o", str(tmp_path / "teacher.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "teacher.zip") as zf:
        record = json.loads(zf.read(f"{model.dataset}/{model.folder.name}/nnunet_ts_model.json"))
    assert (record["channels"], record["segbox_form"], record["folds"]) == (["CT", "noNorm"], "per_lesion", ["0", "1"])
    images, labels = model.raw / "imagesTs", model.raw / "labelsTs"
    case = sorted(p.name[:-len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))[0]
    stock_in = tmp_path / "stock_in"  # one test case for the stock command: its CT and segbox channels
    stock_in.mkdir()
    for channel in ("0000", "0001"):
        shutil.copy(images / f"{case}_{channel}.nii.gz", stock_in)
    run(prefix(model.root) + f"nnUNetv2_predict -i {stock_in} -o {tmp_path / 'stock'} -d {model.raw.name} "
        f"-c 3d_tiny -f 0 1 -tr {model.trainer} -device cpu -npp 1 -nps 1")
    assert main(["restrict-to-box", "--pred", str(tmp_path / "stock"), "--images", str(stock_in),
                 "--out", str(tmp_path / "stock_in_box")]) == 0  # default margin, 5 mm: as predict's

    boxes = model.root / "cases" / f"{case}_boxes.json"  # the reader's per-slice rectangles
    ours = tmp_path / "ours" / f"{case}.nii.gz"
    assert main(["predict", str(images / f"{case}_0000.nii.gz"), str(ours), "-m", str(model.folder),
                 "--boxes", str(boxes), "-device", "cpu", "-f", "0", "1"]) == 0
    gt = read_image(labels / f"{case}.nii.gz")[0]
    reference = read_image(tmp_path / "stock_in_box" / f"{case}.nii.gz")[0]
    mask = read_image(ours)[0]
    # the segbox built from the boxes file is the dataset's own segbox channel
    segbox = prompt_segbox(read_box_prompt(boxes, gt.shape), sitk.ReadImage(str(images / f"{case}_0000.nii.gz")),
                           "per_lesion", "teacher")
    np.testing.assert_array_equal(segbox, read_image(images / f"{case}_0001.nii.gz")[0])
    ours_dsc, stock_dsc = dice(mask, gt), dice(reference, gt)
    print(f"DSC predict --boxes {ours_dsc:.9f}, nnUNetv2_predict + restrict-to-box {stock_dsc:.9f}")
    assert mask.any() and abs(ours_dsc - stock_dsc) <= 1e-6
    assert np.count_nonzero(mask != reference) == 0

    # a teacher without boxes, 3D boxes for a per-slice teacher: one line each, nothing written
    box3d = tmp_path / "box3d.json"
    box3d.write_text(json.dumps({"format": "nnunet_ts.box3d_mm", "version": 1, "coordinates": "LPS",
                                 "boxes": [{"min": [0, 0, 0], "max": [5, 5, 5]}]}))
    ct = str(images / f"{case}_0000.nii.gz")
    assert main(["predict", ct, str(tmp_path / "x.nii.gz"), "-m", str(model.folder)]) == 2
    assert main(["predict", ct, str(tmp_path / "x.nii.gz"), "-m", str(model.folder), "--boxes", str(box3d)]) == 2
    assert not (tmp_path / "x.nii.gz").exists()


def test_teacher_form_is_enforced_and_errors_name_the_fix(tmp_path):
    image = _image((4, 8, 8))
    rects = BoxPrompt(tmp_path / "b.json", rectangles=(SliceRectangle(1, 2, 3, 2, 5),))
    box = BoxPrompt(tmp_path / "c.json", boxes_mm=(((0.0, 0.0, 0.0), (2.0, 2.0, 2.0)),))
    with pytest.raises(InputError, match="trained with box3d segboxes and needs 3D boxes"):
        prompt_segbox(rects, image, "box3d", "T")
    with pytest.raises(InputError, match="trained with per_slice segboxes and needs per-slice rectangles"):
        prompt_segbox(box, image, "per_slice", "T")
    segbox = prompt_segbox(rects, image, "per_lesion", "T")
    assert segbox.sum() == 2 * 4 and segbox[1, 2:4, 2:6].all()


def test_per_slice_form_merges_a_slices_rectangles_as_in_training(tmp_path):
    mask = np.zeros((3, 12, 12), np.uint8)
    mask[1, 1:3, 1:3] = mask[1, 8:10, 7:11] = 1  # two lesions on one slice
    path = tmp_path / "b.json"
    from nnunet_ts.boxes.segbox import slice_rectangles

    save_rectangles(path, slice_rectangles(mask), mask.shape)
    prompt = read_box_prompt(path, mask.shape)
    for form in ("per_lesion", "per_slice"):
        np.testing.assert_array_equal(prompt_segbox(prompt, _image(mask.shape), form, "T"),
                                      segbox_from_mask(mask, form))
    with pytest.raises(InputError, match=r"drawn on a CT of shape \(z, y, x\) \(3, 12, 12\)"):
        read_box_prompt(path, (4, 12, 12))


def test_interpolated_rectangles_fill_the_slices_between_drawn_ones():
    drawn = [SliceRectangle(2, 10, 20, 10, 20, lesion=1), SliceRectangle(6, 14, 20, 10, 28, lesion=1),
             SliceRectangle(4, 0, 1, 0, 1, lesion=2)]
    out = interpolate_rectangles(drawn)
    by_z = {(r.z, r.lesion): r for r in out}
    assert sorted(by_z) == [(2, 1), (3, 1), (4, 1), (4, 2), (5, 1), (6, 1)]
    assert by_z[(4, 1)] == SliceRectangle(4, 12, 20, 10, 24, lesion=1)  # half-way
    assert by_z[(3, 1)] == SliceRectangle(3, 11, 20, 10, 22, lesion=1)  # a quarter: 11, 22


def test_box3d_in_mm_takes_the_voxels_whose_centres_lie_inside():
    # spacing (x, y, z) = (2, 1, 3) mm, origin (10, -5, 100): voxel (i, j, k) sits at (10 + 2i, -5 + j, 100 + 3k)
    image = _image((5, 10, 8), spacing=(2.0, 1.0, 3.0), origin=(10.0, -5.0, 100.0))
    segbox = box3d_segbox([((13.0, -3.0, 103.0), (18.0, 0.0, 109.0))], image)
    expected = np.zeros((5, 10, 8), np.uint8)
    expected[1:4, 2:6, 2:5] = 1  # x 14, 16, 18 -> i 2..4; y -3..0 -> j 2..5; z 103..109 -> k 1..3
    np.testing.assert_array_equal(segbox, expected)
    # a CT flipped in x and y (direction diag(-1, -1, 1)): the same mm box, other voxel indices
    flipped = _image((5, 10, 8), spacing=(2.0, 1.0, 3.0), origin=(10.0, -5.0, 100.0),
                     direction=np.diag([-1.0, -1.0, 1.0]))
    segbox = box3d_segbox([((-4.0, -15.0, 103.0), (1.0, -12.0, 109.0))], flipped)
    expected = np.zeros((5, 10, 8), np.uint8)
    expected[1:4, 7:10, 5:8] = 1  # x = 10 - 2i in [-4, 1] -> i 5..7; y = -5 - j in [-15, -12] -> j 7..9 (of 10)
    np.testing.assert_array_equal(segbox, expected)
    with pytest.raises(InputError, match="holds no voxel"):
        box3d_segbox([((500.0, 500.0, 500.0), (501.0, 501.0, 501.0))], image)


def test_voc_boxes_are_matched_to_slices_by_sop_instance_uid(tmp_path):
    folder = tmp_path / "Annotation"
    folder.mkdir()
    (folder / "1.2.3.7.xml").write_text(
        "<annotation><object><name>A</name><bndbox><xmin>3</xmin><ymin>5</ymin><xmax>6</xmax><ymax>9</ymax>"
        "</bndbox></object></annotation>")
    uids = [f"1.2.3.{i}" for i in range(10)]
    prompt = read_box_prompt(folder, (10, 16, 16), uids)
    assert prompt.rectangles == (SliceRectangle(7, 4, 8, 2, 5),)  # VOC: 1-based, x = column
    assert read_box_prompt(folder / "1.2.3.7.xml", (10, 16, 16), uids).rectangles == prompt.rectangles
    with pytest.raises(InputError, match="must then be the DICOM series"):
        read_box_prompt(folder, (10, 16, 16), None)
    with pytest.raises(InputError, match="no box of"):
        read_box_prompt(folder, (10, 16, 16), [f"9.{i}" for i in range(10)])


def test_unknown_box_file_is_one_clear_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"format": "something"}))
    with pytest.raises(InputError, match="has format 'something'"):
        read_box_prompt(path, (2, 2, 2))
    with pytest.raises(InputError, match="does not exist"):
        read_box_prompt(tmp_path / "missing.json", (2, 2, 2))

