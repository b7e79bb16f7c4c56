"""The global branch: CNN descriptors, their checkpoints and training, whitening and cosine search."""
