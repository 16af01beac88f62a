"""The U-Net and self-describing model files."""
