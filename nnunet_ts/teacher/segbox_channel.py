"""The segbox as an input channel of nnU-Net: which channel it is, and the threshold that keeps it binary.

A teacher dataset (``nnunet_ts dataset teacher``) has channel ``_0000`` CT and ``_0001`` segbox, named
``noNorm`` in ``dataset.json`` so nnU-Net leaves its values alone. nnU-Net otherwise treats it as an
image: preprocessing resamples every channel with third-order splines (box edges become a ramp of
fractional values; nnU-Net clips the overshoot to the input range) and the spatial augmentation
interpolates it linearly (fractional edges again). ``plan-teacher`` resamples the channel like the mask
instead, and the augmentation and the network's input are thresholded at 0.5, which keeps each box
edge where the interpolated step crosses half height: within half a voxel of the exact
nearest-neighbour box, and never a spurious box voxel (spline ringing of a unit step stays far below
0.5).
"""
from __future__ import annotations

from nnunet_ts.errors import InputError

SEGBOX_CHANNEL_NAME = "noNorm"
SEGBOX_THRESHOLD = 0.5


def segbox_channel_index(dataset_json: dict, source: str = "dataset.json") -> int:
    """Index of the segbox channel: the one channel named ``noNorm`` after channel 0 (the CT).

    Raises:
        InputError: no such channel, or more than one (the file ``source`` and the fix are named).
    """
    names = dataset_json.get("channel_names") or dataset_json.get("modality") or {}
    found = [int(k) for k, v in names.items() if str(v) == SEGBOX_CHANNEL_NAME and int(k) > 0]
    if len(found) != 1:
        raise InputError(
            f"{source}: a teacher dataset needs exactly one segbox channel named "
            f"{SEGBOX_CHANNEL_NAME!r} besides the CT (channel_names {names}); write the dataset with "
            f"`nnunet_ts dataset teacher` or set channel_names to {{\"0\": \"CT\", \"1\": \"noNorm\"}}")
    return found[0]
