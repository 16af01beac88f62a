"""The version of wormclean, in a module of its own so that every layer can read it without importing the package
face (which imports nothing heavy, but is the top of the layers)."""

__version__ = "0.1.0"
