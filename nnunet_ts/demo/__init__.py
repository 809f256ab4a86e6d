"""``nnunet_ts demo``: the paper's experiment end to end (config, stages, report)."""
