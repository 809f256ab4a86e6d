"""Running chosen sliding-window tiles through nnU-Net's predictor.

``nnUNetPredictor.predict_sliding_window_return_logits`` (nnU-Net 2.8) asks
``_internal_get_sliding_window_slicers(image_size)`` for the tiles of an image and then averages them
with Gaussian weights. :func:`planned_tiles` makes it take given tiles instead, for one block: the
ROI pseudo-labels (``pseudolabel.roi.tile_plan``) run exactly the whole volume's tiles that reach a
region. Resampled samples that no given tile reaches end up 0 / 0 in nnU-Net's average; the caller
handles them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def planned_tiles(predictor, slicers: Sequence[tuple[slice, ...]] | None) -> Iterator[None]:
    """Within the block, ``predictor`` runs ``slicers`` (nnU-Net's format: channel axis first) on every
    image whose size they fit; None leaves the predictor as it is."""
    if slicers is None:
        yield
        return
    stock = predictor._internal_get_sliding_window_slicers
    needed = [max(s.stop for s in axis) for axis in zip(*[sl[1:] for sl in slicers])]

    def given(image_size):
        if all(size >= n for size, n in zip(image_size, needed)):
            return list(slicers)
        return stock(image_size)

    own = predictor.__dict__.get("_internal_get_sliding_window_slicers")
    predictor._internal_get_sliding_window_slicers = given
    try:
        yield
    finally:
        if own is None:
            del predictor._internal_get_sliding_window_slicers  # the class's method again
        else:
            predictor._internal_get_sliding_window_slicers = own
