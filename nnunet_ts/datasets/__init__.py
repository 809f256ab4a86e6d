"""nnU-Net raw datasets of the method: teacher, student and weak datasets, splits, lung crops, resume."""
