"""The benchmark: every system scored side by side, the written report, the scale curve."""
