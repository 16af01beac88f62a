"""Shipped model weights (``*.pt``) and their registry (``registry.json``); see README.md here."""
