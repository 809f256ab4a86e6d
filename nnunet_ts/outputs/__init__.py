"""What a prediction leaves for the clinic: lesion measurements and their table, DICOM SEG and
RTSTRUCT objects referencing the source CT series, and a PNG preview.

Plain functions on numpy arrays (z, y, x) and the CT as a SimpleITK image; ``nnunet_ts predict``
calls them. Importing this package loads no DICOM, plotting or image library.
"""
from nnunet_ts.outputs.dicom_seg import write_dicom_seg
from nnunet_ts.outputs.lesions import (
           Lesion,
           format_lesion_table,
           measure_lesions,
           read_lesion_table,
           write_lesion_table,
)
from nnunet_ts.outputs.preview import render_preview, write_preview
from nnunet_ts.outputs.rtstruct import write_rtstruct

__all__ = ["Lesion", "measure_lesions", "write_lesion_table", "read_lesion_table", "format_lesion_table",
           "write_dicom_seg", "write_rtstruct", "write_preview", "render_preview"]
