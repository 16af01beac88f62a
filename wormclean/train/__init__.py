"""Training (``wormclean fit``)."""
