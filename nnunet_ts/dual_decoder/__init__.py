"""The dual-output student's pieces: the two-decoder network, segbox targets, their augmentation and loss."""
