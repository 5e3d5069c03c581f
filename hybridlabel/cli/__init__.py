"""The `hybridlabel` command line and its terminal views, over the Python API (`hybridlabel`)."""
