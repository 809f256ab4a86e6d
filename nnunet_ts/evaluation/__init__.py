"""The paper's evaluation: per-case DSC, DSC-TP, lesion-level F1, and folders of predictions scored."""
