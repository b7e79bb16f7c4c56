"""Reading and writing: image files, manifests, Parquet table schemas, HDF5 helpers, ISC CSV files,
and writing any of them whole or not at all (:mod:`d2lv.io.atomic`)."""
