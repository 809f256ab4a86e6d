"""The box-guided teacher's pieces: the segbox input channel and the augmentation that keeps it a box."""
