"""The hash branch: PDQ perceptual hashes of every image, nearest references by Hamming distance."""
