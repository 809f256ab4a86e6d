"""nnU-Net's inference resampling with its channels in threads gives nnU-Net's values bit for bit."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_ts.nnunet.inference_resampling import ThreadedResampling, per_channel, use_threaded_resampling

RESAMPLING = {"resampling_fn_data": "resample_data_or_seg_to_shape",
              "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
              "resampling_fn_seg": "resample_data_or_seg_to_shape",
              "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
              "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                     "force_separate_z": None}}


@pytest.mark.parametrize("spacing", [(2.5, 0.7, 0.7), (1.2, 0.8, 0.9)])  # separate z (anisotropic) or not
def test_threaded_resampling_equals_nnunets(spacing):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 9, 30, 27)).astype(np.float32)
    data[1] = data[1] > 1  # a binary channel like the segbox
    target, new_shape = (1.5, 1.0, 1.0), (15, 21, 24)
    stock = ConfigurationManager({"spacing": list(target), "architecture": {}, **RESAMPLING})
    threaded = ThreadedResampling(stock)
    assert threaded.spacing == list(target)  # everything else is the wrapped manager's
    np.testing.assert_array_equal(threaded.resampling_fn_data(data, new_shape, spacing, target),
                                  stock.resampling_fn_data(data, new_shape, spacing, target))
    logits = torch.from_numpy(data)
    back = threaded.resampling_fn_probabilities(logits, (9, 30, 27), target, spacing)
    np.testing.assert_array_equal(back, stock.resampling_fn_probabilities(logits, (9, 30, 27), target, spacing))
    assert back.dtype == np.float32
    mask = threaded.resampling_fn_seg(np.zeros((1, *data.shape[1:]), np.int8), new_shape, spacing, target)
    assert mask.shape == (1, *new_shape) and mask.dtype == np.int8 and not mask.any()


def test_per_channel_keeps_channel_order_and_single_channels():
    data = np.stack([np.full((4, 5, 6), float(c)) for c in range(3)])
    out = per_channel(resample_data_or_seg_to_shape)(data, (8, 10, 12), (2, 2, 2), (1, 1, 1), order=1)
    assert out.shape == (3, 8, 10, 12) and [float(out[c].mean()) for c in range(3)] == [0.0, 1.0, 2.0]
    one = per_channel(resample_data_or_seg_to_shape)(data[:1], (8, 10, 12), (2, 2, 2), (1, 1, 1), order=1)
    np.testing.assert_array_equal(one, out[:1])


def test_a_cascades_previous_stage_mask_is_resampled_and_the_wrapper_pickles_and_installs_once():
    seg = np.zeros((1, 9, 30, 27), np.int8)
    seg[0, 3:6, 10:20, 5:15] = 1
    spacing, target, new_shape = (2.5, 0.7, 0.7), (1.5, 1.0, 1.0), (15, 21, 24)
    cascade = ConfigurationManager({"spacing": list(target), "architecture": {}, "previous_stage": "3d_lowres",
                                    **RESAMPLING})
    np.testing.assert_array_equal(ThreadedResampling(cascade).resampling_fn_seg(seg, new_shape, spacing, target),
                                  cascade.resampling_fn_seg(seg, new_shape, spacing, target))
    copy = pickle.loads(pickle.dumps(ThreadedResampling(cascade)))  # nnU-Net's worker processes get it pickled
    assert copy.spacing == list(target) and copy.previous_stage_name == "3d_lowres"
    predictor = SimpleNamespace(configuration_manager=cascade)
    use_threaded_resampling(predictor)
    use_threaded_resampling(predictor)
    assert isinstance(predictor.configuration_manager, ThreadedResampling)
    assert predictor.configuration_manager._wrapped is cascade
