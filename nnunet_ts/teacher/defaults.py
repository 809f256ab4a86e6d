"""The teachers' training defaults (a configuration's ``"nnunet_ts"`` settings override them).

* ``FOREGROUND_SAMPLING``: patches centred on tumour (inside its box) in 90 % of the samples instead of
  nnU-Net's 33 %: the paper's teachers see crops centred on the tumour. The remaining 10 % show box-free
  anatomy, so the box teacher keeps learning that no box means no tumour. The CT-only teacher shares it,
  so the two differ only in the segbox channel.
* ``BOX_PERTURBATION``: probability that a sample's boxes are perturbed as a reader draws them
  (``boxes.perturbation``).
"""
FOREGROUND_SAMPLING = 0.9
BOX_PERTURBATION = 0.5
