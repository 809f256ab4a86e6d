"""Builders of test data: hand-made cases, DICOM series, planned student datasets, tiny trained models."""
