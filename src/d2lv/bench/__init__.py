"""The benchmark: the PDQ baseline, every system scored side by side, the written report."""
