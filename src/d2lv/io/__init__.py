"""Reading and writing: image files, manifests, Parquet table schemas, HDF5 helpers, ISC CSV files."""
