"""Errors that mean "the user gave us something we cannot use".

The CLI turns every :class:`WormcleanError` into one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""


class WormcleanError(Exception):
    """Base class: bad input, bad settings or a bad file, explained in one line."""


class VideoError(WormcleanError):
    """A video (file, folder or HDF5) cannot be opened or has no decodable frame."""


class ModelFileError(WormcleanError):
    """A model file is missing, damaged, of another format version or not a wormclean model."""


class SettingsError(WormcleanError):
    """Options that cannot work together, or are out of range."""


class OutputError(WormcleanError):
    """An output cannot be written: it exists (and --overwrite is off), its folder is missing or unwritable."""


class TrainingError(WormcleanError):
    """Training cannot go on: the loss or the weights stopped being finite numbers (the run diverged)."""


class ArrayError(WormcleanError, ValueError):
    """An array given to the Python API cannot be a frame or a background: wrong type, shape or values."""
