"""Training data: lagged frame pairs from videos, patch streams."""
