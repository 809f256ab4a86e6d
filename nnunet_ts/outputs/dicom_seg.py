"""The tumour mask as a DICOM Segmentation (SEG) object that PACS viewers and OHIF overlay on the CT.

Written with highdicom (``highdicom.seg.Segmentation``), which builds the multi-frame SEG from the
source CT headers: patient and study are copied from the CT, every frame references its CT slice
(SOP instance) and carries its plane position, and the frame of reference is the CT's. One segment
(BINARY, 1 bit per voxel), coded as SNOMED CT "Neoplasm" in "Morphologically Abnormal
Structure", algorithm type AUTOMATIC. Slices without tumour are left out, as highdicom does by
default; readers fill them with zeros (an empty mask keeps all its frames, since a SEG needs one).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ts import __version__
from nnunet_ts.io.atomic import write_atomic
from nnunet_ts.outputs.source_series import load_source_series

SEG_SERIES_NUMBER = 901


def write_dicom_seg(mask: np.ndarray, source_files: Sequence[str | Path], path: str | Path, *,
                    segment_label: str = "Tumour", algorithm_name: str = "nnunet_ts",
                    algorithm_version: str | None = None, series_number: int = SEG_SERIES_NUMBER,
                    series_description: str = "nnunet_ts tumour segmentation") -> Path:
    """Write ``mask`` as a binary DICOM SEG referencing the CT series ``source_files``.

    Args:
        mask: (z, y, x) nonzero = tumour, on the series' grid as
            :func:`nnunet_ts.io.dicom.read_ct` reads it (slices along the normal, rows, columns).
        source_files: the CT series' DICOM files, in any order.
        path: the SEG file to write (replaced whole if it exists; parent folder must exist).
        segment_label: the segment's name shown by viewers.
        algorithm_name, algorithm_version: recorded in the segment's algorithm identification
            (version defaults to nnunet_ts's).

    Returns:
        ``path``.

    Raises:
        InputError: the files are not one CT series, or the mask's shape differs from it.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    source = load_source_series(source_files)
    binary = source.check_mask(mask).astype(np.uint8)
    version = algorithm_version or __version__
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=version, family=codes.cid7162.ArtificialIntelligence)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=segment_label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
    seg = hd.seg.Segmentation(
        source_images=source.datasets, pixel_array=binary,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=generate_uid(), series_number=series_number, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="nnunet_ts", manufacturer_model_name=algorithm_name,
        software_versions=version, device_serial_number="none", series_description=series_description,
        omit_empty_frames=bool(binary.any()))  # a SEG needs one frame: an empty mask keeps all
    path = Path(path)
    write_atomic(path, lambda f: seg.save_as(f, enforce_file_format=True))
    return path
