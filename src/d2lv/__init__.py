"""d2lv: image copy detection with global and local dual retrieval."""

__version__ = "0.1.0"
