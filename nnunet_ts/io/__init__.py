"""Reading and writing what users bring: images with geometry, DICOM series, boxes files, case manifests."""
