"""Using a trained model: a CT (NIfTI or DICOM) in, a tumour mask in its own geometry out."""
