"""The copy-region detector (YOLOv5u through ultralytics): training, detection and crops."""
