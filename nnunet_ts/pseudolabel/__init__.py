"""The pseudo-label step: a trained box-guided teacher annotates the weak (box-only) scans, and its
foreground probabilities, not thresholded, become the soft targets of a new student dataset.

  roi.py       where the teacher looks (each box's region plus a margin in mm) and pasting back
  teacher.py   a trained teacher model folder loaded through nnU-Net's predictor, checked
  quality.py   per-case quality figures and flags of a pseudo label
  run.py       the whole step: shards, resume, merge into a student dataset with provenance
"""
