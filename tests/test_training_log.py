"""Onset epochs read from nnU-Net training logs."""
from nnunet_ts.nnunet.training_log import onset_epoch, training_log_text

LOG = """2026-11-24 05:27:30.525846: Epoch 0
2026-11-24 05:27:44.000000: Pseudo dice [np.float32(0.0)]
2026-11-24 05:27:45.736954: Epoch 1
2026-11-24 05:27:59.000000: Pseudo dice [nan]
2026-11-24 05:28:00.000000: Epoch 2
2026-11-24 05:28:14.000000: Pseudo dice [np.float32(0.0412)]
2026-11-24 05:28:15.000000: Epoch 3
2026-11-24 05:28:29.000000: Pseudo dice [0.3, 0.01]
2026-11-24 05:28:30.000000: Epoch 4
2026-11-24 05:28:44.000000: Pseudo dice [np.float32(0.9)]
"""


def test_onset_is_the_first_epoch_above_the_threshold_nan_never_counts():
    assert onset_epoch(LOG) == 3  # numpy-1 list form, first class decides
    assert onset_epoch(LOG, threshold=0.5) == 4
    assert onset_epoch(LOG, threshold=0.04) == 2  # numpy-2 form
    assert onset_epoch(LOG, threshold=0.95) is None
    assert onset_epoch(LOG.replace("Pseudo dice [0.3, 0.01]", "Pseudo dice [nan]")) == 4


def test_logs_of_a_resumed_training_are_read_oldest_first(tmp_path):
    lines = LOG.splitlines(keepends=True)
    (tmp_path / "training_log_2026_11_24_05_27_30.txt").write_text("".join(lines[:6]))
    (tmp_path / "training_log_2026_11_24_06_00_00.txt").write_text("".join(lines[6:]))
    assert onset_epoch(training_log_text(tmp_path)) == 3
    assert training_log_text(tmp_path / "missing") == ""
