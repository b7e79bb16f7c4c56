"""The local branch: RootSIFT features, their store, faiss recall with votes, and pair verification."""
