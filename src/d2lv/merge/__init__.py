"""The merge of every branch into one score per pair: pair features and the calibrated model."""
