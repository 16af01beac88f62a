"""Video, image and HDF5 input/output."""
