"""Labelled sets made from photos: copy edits and families, the demo, dev, benchmark and calibration sets, and
the copy-region detector's training set."""
