"""Matching images one at a time against a collection the workflow built: ``d2lv query`` and ``d2lv serve``."""
