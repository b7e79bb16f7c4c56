"""ISC 2021 metrics: micro-AP, recall at precision 0.9, recall@1 (overall and per family)."""
