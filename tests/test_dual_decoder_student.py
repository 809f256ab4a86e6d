"""The dual-decoder student on a tiny planned student dataset: segbox targets on the preprocessed grid,
batches, where the trainer's loss sends gradients, every trainer class, and the stock commands on the
configuration ``plan-dual`` adds, with a predictor check (the trained model's prediction is the
segmentation path alone).

Cases are (3.0, 1.5, 1.5) mm (z, y, x), planned at (2.0, 1.0, 1.0) mm, so preprocessing resamples.
"""
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import DUAL_ID as DATASET_ID
from tests.conftest import DUAL_NAME as NAME
from tests.factories.stock import prefix, requires_nnunet, run
from tests.factories.trainers import make_trainer

pytestmark = pytest.mark.xdist_group("planned_datasets")

TRAINER, CONFIG = "DualDecoderStudentTrainer", "3d_tiny_dual_budget"


@pytest.fixture
def dual_env(dual_root, in_root, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return in_root(dual_root)


def _preprocessed(root: Path) -> Path:
    return root / "nnUNet_preprocessed" / f"Dataset{DATASET_ID}_{NAME}"


def _trainer(settings: dict | None = None):
    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer

    return make_trainer(DualDecoderStudentTrainer,
                        Path(os.environ["nnUNet_preprocessed"]) / f"Dataset{DATASET_ID}_{NAME}", settings=settings)


def test_segbox_targets_on_the_preprocessed_grid(dual_env):
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from scipy import ndimage

    from nnunet_ts.dual_decoder.segbox_targets import ensure_segbox_targets, segbox_target_file
    from nnunet_ts.errors import InputError
    from nnunet_ts.io.images import read_image

    trainer = _trainer()
    dataset_tr, _ = trainer.get_tr_and_val_datasets()
    folder = Path(trainer.preprocessed_dataset_folder)
    dataset = infer_dataset_class(str(folder))(str(folder))
    raw = dual_env / "nnUNet_raw" / f"Dataset{DATASET_ID}_{NAME}"
    transpose = trainer.plans_manager.transpose_forward
    made = sorted(set(dataset_tr.identifiers))
    assert sorted(p.name[:-len("_segbox.npy")] for p in folder.glob("*_segbox.npy")) == made
    for case in made:
        stored = np.load(segbox_target_file(folder, case))
        data, seg, _, _ = dataset.load_case(case)
        mask = np.asarray(seg)[0] > 0
        assert stored.dtype == np.uint8 and stored.shape == data.shape[1:]
        if trainer.sources[case] == "strong":
            assert not (mask & (stored == 0)).any()  # contains the mask exactly
            if int(case[-3:]) % 2 == 0:  # one cube lesion: its per-slice rectangles are the cube
                assert np.array_equal(stored, mask)
        else:  # the annotated box: cropped and linearly resampled as the soft target, >= 0.5
            properties = pickle.loads((folder / f"{case}.pkl").read_bytes())
            box, _ = read_image(raw / "segboxesTr" / f"{case}.nii.gz")
            (z0, z1), (y0, y1), (x0, x1) = properties["bbox_used_for_cropping"]
            box = box.transpose(transpose)[z0:z1, y0:y1, x0:x1].astype(np.float64)
            axes = [(np.arange(n_out) + 0.5) * n_in / n_out - 0.5 for n_in, n_out in zip(box.shape, stored.shape)]
            expected = ndimage.map_coordinates(box, np.meshgrid(*axes, indexing="ij"), order=1, mode="nearest")
            differ = (expected >= 0.5) != (stored == 1)
            assert stored.sum() > 0 and not (differ & (np.abs(expected - 0.5) > 1e-4)).any()
    strong = [c for c in made if trainer.sources[c] == "strong"]
    pseudo = [c for c in made if trainer.sources[c] == "pseudo"]
    assert ensure_segbox_targets(folder, strong, pseudo, trainer.plans_manager, raw / "segboxesTr") == []
    # another segbox form remakes the strong cases' segboxes only, and back again
    segboxes = raw / "segboxesTr"
    assert ensure_segbox_targets(folder, strong, pseudo, trainer.plans_manager, segboxes, mode="box3d") == strong
    assert ensure_segbox_targets(folder, strong, pseudo, trainer.plans_manager, segboxes) == strong
    with pytest.raises(InputError, match="no annotated segbox"):
        ensure_segbox_targets(folder, [], pseudo, trainer.plans_manager, None, overwrite=True)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """(z, y, x) 0/1 -> 0/1 grown by one voxel (26-neighbourhood)."""
    return torch.nn.functional.max_pool3d(mask[None, None].float(), 3, 1, 1)[0, 0]


def test_batches_carry_a_binary_augmented_segbox_that_contains_strong_masks(dual_env):
    trainer = _trainer()  # mirroring and every augmentation on
    loader, val_loader = trainer.get_dataloaders()
    seen = {"strong": 0, "pseudo": 0}
    for _ in range(6):
        batch = next(loader)
        targets = batch["target"]
        assert len(targets) == len(trainer._get_deep_supervision_scales())
        for b, key in enumerate(batch["keys"]):
            seen[trainer.sources[key]] += 1
            for t in targets:
                assert t.shape[1] == 2
                fg, segbox = t[b, 0], t[b, 1]
                assert set(torch.unique(segbox).tolist()) <= {0.0, 1.0}
                if trainer.sources[key] == "strong":
                    assert not ((fg > 0) & (_dilate(segbox) == 0)).any()
            if trainer.sources[key] == "strong" and targets[0][b, 0].sum() > 0:
                assert targets[0][b, 1].sum() >= targets[0][b, 0].sum() * 0.9
            if trainer.sources[key] == "pseudo":  # the drawn box, moved with the CT and the soft target
                fg, segbox = targets[0][b, 0], targets[0][b, 1]
                core = fg > 0.9  # the teacher's confident tumour lies inside the true mask, so in its box
                assert not (core & (_dilate(segbox) == 0)).any()
                assert segbox.sum() >= core.sum()
    assert seen["strong"] and seen["pseudo"]
    assert next(val_loader)["target"][0].shape[1] == 1  # validation: the single-output student's target


def test_gradients_reach_the_box_decoder_only_from_the_box_loss(dual_env):
    trainer = _trainer()
    trainer.dataloader_train, _ = trainer.get_dataloaders()
    batch = next(trainer.dataloader_train)
    network = trainer.network
    network.train()
    trainer._tell_loss_the_sources(batch)
    own = lambda decoder: [p for n, p in decoder.named_parameters() if not n.startswith("encoder.")]  # noqa: E731

    def grads_after(loss_part: str):
        network.zero_grad(set_to_none=True)
        seg, box = trainer.loss.parts(network(batch["data"]), batch["target"])
        (seg if loss_part == "seg" else box).backward()
        nonzero = lambda ps: [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in ps]  # noqa: E731
        return nonzero(own(network.decoder)), nonzero(own(network.box_decoder)), nonzero(network.encoder.parameters())

    seg_dec, box_dec, enc = grads_after("seg")
    assert any(seg_dec) and not any(box_dec) and any(enc)
    seg_dec, box_dec, enc = grads_after("box")
    assert not any(seg_dec) and any(box_dec) and any(enc)
    with torch.no_grad():
        output = network(batch["data"])
        seg, box = trainer.loss.parts(output, batch["target"])
        assert trainer.loss.box_weight == trainer.box_loss_weight == 1.0
        torch.testing.assert_close(trainer.loss(output, batch["target"]), seg + box)


class _SegmentationPath(torch.nn.Module):
    """The dual network's encoder + segmentation decoder, nothing else (in the network's CPU precision)."""

    def __init__(self, network):
        from nnunet_ts.nnunet.cpu_precision import autocast_forward_on_cpu

        super().__init__()
        self.encoder, self.decoder = network.encoder, network.decoder
        autocast_forward_on_cpu(self, "bf16" if getattr(network, "_nnunet_ts_cpu_precision", False) else "fp32")

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _stock_predict_case_005(dual_env: Path, tmp_path: Path, trainer: str, configuration: str, *options: str) -> Path:
    """``nnUNetv2_predict`` of case_005 with fold 0 of ``trainer`` on ``configuration``; returns the output folder."""
    raw = dual_env / "nnUNet_raw" / f"Dataset{DATASET_ID}_{NAME}"
    inputs, pred = tmp_path / "in", tmp_path / "pred"
    inputs.mkdir()
    shutil.copy(raw / "imagesTr" / "case_005_0000.nii.gz", inputs)
    run(prefix(dual_env) + f"nnUNetv2_predict -i {inputs} -o {pred} -d {DATASET_ID} -c {configuration} -f 0 "
        f"-tr {trainer} -device cpu -chk checkpoint_final.pth {' '.join(options)}")
    return pred


def _predictor(model: Path, monkeypatch):
    """nnU-Net's predictor on fold 0 of ``model``, which builds the network through the checkpoint's trainer."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_ts.nnunet.paths import trainers_dir

    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))  # the predictor looks the trainer up
    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    return predictor


@requires_nnunet
def test_stock_train_and_predict_and_the_predictor_runs_the_segmentation_path(dual_env, tmp_path, monkeypatch):
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    from nnunet_ts.dual_decoder.network import DualDecoderUNet

    # the configuration plan-dual adds (lambda 0.5, per-slice segboxes, the paper's full box decoder), with a tiny
    # budget on top, trained by the stock command; the predictor below builds the same network from the plans
    # to load the checkpoint
    run(prefix(dual_env) + f"nnunet_ts plan-dual -d {DATASET_ID} -c 3d_tiny --box-loss-weight 0.5 "
        f"--segbox-mode per_slice --box-decoder-convs full && nnunet_ts budget-config -d {DATASET_ID} "
        f"-c {CONFIG} --source 3d_tiny_dual --epochs 2 --iterations 4 --val-iterations 2 && "
        f"nnUNetv2_train {DATASET_ID} {CONFIG} 0 -tr {TRAINER} -device cpu", nnUNet_n_proc_DA="0")
    model = dual_env / "nnUNet_results" / f"Dataset{DATASET_ID}_{NAME}" / f"{TRAINER}__nnUNetPlans__{CONFIG}"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    log = "".join(p.read_text() for p in (model / "fold_0").glob("training_log_*.txt"))
    assert "box_loss_weight (lambda) 0.5, segbox_mode 'per_slice', box decoder convolutions per stage as the " \
        "segmentation decoder (full), from the plans" in log
    record = json.loads((_preprocessed(dual_env) / "nnUNetPlans_3d_fullres_segbox_targets.json").read_text())
    assert record and set(record.values()) == {"per_slice"}  # the strong cases' segboxes made again
    assert (model / "fold_0" / "validation" / "summary.json").is_file()

    pred = _stock_predict_case_005(dual_env, tmp_path, TRAINER, CONFIG)
    assert (pred / "case_005.nii.gz").is_file()

    predictor = _predictor(model, monkeypatch)
    assert isinstance(predictor.network, DualDecoderUNet)
    assert {len(stage.convs) for stage in predictor.network.box_decoder.stages} == {2}  # the full copy, as planned
    folder = _preprocessed(dual_env) / "nnUNetPlans_3d_fullres"
    data = torch.from_numpy(np.asarray(infer_dataset_class(str(folder))(str(folder)).load_case("case_005")[0]))
    both = predictor.predict_sliding_window_return_logits(data.clone())
    predictor.network = _SegmentationPath(predictor.network).eval()
    alone = predictor.predict_sliding_window_return_logits(data.clone())
    assert both.shape == (2, *data.shape[1:])
    torch.testing.assert_close(both, alone, rtol=0, atol=0)


@requires_nnunet
def test_sun_student_trains_and_predicts_with_stock_commands(dual_env, tmp_path, monkeypatch):
    """Sun et al.'s student (shared decoder + localisation branch) through the stock commands, on the
    configuration plan-dual adds; the predictor builds it from the checkpoint's trainer name."""

    from nnunet_ts.dual_decoder.sun_network import SunStudentUNet

    config = "3d_tiny_sun"
    log = run(prefix(dual_env) + f"nnunet_ts plan-dual -d {DATASET_ID} -c 3d_tiny --name 3d_tiny_sun_dual "
              f"--overwrite && nnunet_ts budget-config -d {DATASET_ID} -c {config} --source 3d_tiny_sun_dual "
              f"--epochs 2 --iterations 4 --val-iterations 2 --overwrite && "
              f"nnUNetv2_train {DATASET_ID} {config} 0 -tr SunStudentTrainer -device cpu", nnUNet_n_proc_DA="0")
    assert "Using trainer 'SunStudentTrainer'" in log
    model = dual_env / "nnUNet_results" / f"Dataset{DATASET_ID}_{NAME}" / f"SunStudentTrainer__nnUNetPlans__{config}"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    assert (model / "fold_0" / "validation" / "summary.json").is_file()
    pred = _stock_predict_case_005(dual_env, tmp_path, "SunStudentTrainer", config, "--save_probabilities")
    probabilities = np.load(pred / "case_005.npz")["probabilities"]
    assert probabilities.shape[0] == 2 and np.allclose(probabilities.sum(0), 1.0, atol=1e-3)
    assert isinstance(_predictor(model, monkeypatch).network, SunStudentUNet)


def test_the_trainer_defaults_are_the_settings_defaults_and_the_box_decoder_is_the_full_copy():
    from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings
    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer as T

    d = DualDecoderSettings()
    assert (T.box_loss_weight, T.segbox_mode, T.box_decoder_convs) == \
        (d.box_loss_weight, d.segbox_mode, d.box_decoder_convs)
    assert d.box_decoder_convs is None  # decided on the validation set (design_choice.py)
