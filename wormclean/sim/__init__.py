"""Synthetic worm videos with known truth."""
