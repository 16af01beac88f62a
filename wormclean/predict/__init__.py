"""Tiled inference and the video masking pipeline."""
