"""What a run shows its user: the HTML report's figures and the skipped-inputs table."""
