"""nnU-Net's resampling for one case's prediction, its channels resampled side by side in threads.

What it mirrors (nnU-Net 2.8): ``DefaultPreprocessor.run_case_npy`` resamples the image with
``configuration_manager.resampling_fn_data`` and the nonzero mask of ``crop_to_nonzero`` with
``resampling_fn_seg``; ``convert_predicted_logits_to_segmentation_with_correct_shape`` resamples the
logits back with ``resampling_fn_probabilities``. nnU-Net's resampling functions
(``default_resampling.resample_data_or_seg``) treat every channel on its own, one after the other,
in scipy, which releases the GIL: :class:`ThreadedResampling` runs the channels in threads and
stacks the results, so the values are nnU-Net's, bit for bit, in about half the time on two cores.

For a prediction from arrays (``PreprocessAdapterFromNpy``) of a model without a previous stage (not
a cascade's second stage) the resampled nonzero mask is discarded: it is not computed (an all-zero mask
of the right shape takes its place). :func:`use_threaded_resampling` puts this into a loaded
``nnUNetPredictor``, whose ``predict_single_npy_array`` (what ``nnunet_ts predict`` and the
pseudo-label step call) reads its ``configuration_manager``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _threads() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def per_channel(fn):
    """``fn(data, new_shape, *args, **kwargs)`` (nnU-Net's signature, channel axis first) run on each
    channel in its own thread, results stacked in channel order."""
    def resample(data, new_shape, *args, **kwargs):
        if not isinstance(data, np.ndarray):  # logits come as a CPU tensor
            data = data.numpy()
        channels = data.shape[0]
        workers = min(channels, _threads())
        if workers < 2:
            return fn(data, new_shape, *args, **kwargs)
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda c: fn(data[c:c + 1], new_shape, *args, **kwargs), range(channels)))
        return np.concatenate(parts, axis=0)
    return resample


def _unused_mask(seg, new_shape, *args, **kwargs):
    """The prediction never reads the resampled nonzero mask: zeros of its shape and type."""
    return np.zeros((seg.shape[0], *[int(n) for n in new_shape]), dtype=seg.dtype)


class ThreadedResampling:
    """A ``ConfigurationManager`` for predicting from arrays: every attribute is the wrapped one's but
    the resampling functions (see the module docstring). Pass it where nnU-Net's inference takes the
    configuration manager (``PreprocessAdapterFromNpy``, the logits' export)."""

    def __init__(self, configuration_manager):
        self._wrapped = configuration_manager

    def __getattr__(self, name):
        if name == "_wrapped":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    @property
    def resampling_fn_data(self):
        return per_channel(self._wrapped.resampling_fn_data)

    @property
    def resampling_fn_probabilities(self):
        return per_channel(self._wrapped.resampling_fn_probabilities)

    @property
    def resampling_fn_seg(self):
        if self._wrapped.previous_stage_name is not None:  # a cascade: the previous stage's mask is read
            return per_channel(self._wrapped.resampling_fn_seg)
        return _unused_mask


def use_threaded_resampling(predictor) -> None:
    """Give an initialised ``nnUNetPredictor`` :class:`ThreadedResampling` (once)."""
    if not isinstance(predictor.configuration_manager, ThreadedResampling):
        predictor.configuration_manager = ThreadedResampling(predictor.configuration_manager)
