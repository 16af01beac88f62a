"""Applying a stills model to images (``wormclean filter``).

The image goes to the model's working space (its colour mode and polarity, from the model file), through the
net, and back to raw pixels: for a ``keep`` model the result shows the target objects on a plain background,
in the look of the input (a complemented working space is complemented back).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from wormclean.errors import ModelFileError, SettingsError
from wormclean.io.images import bit_depth_of
from wormclean.model.modelfile import ModelFile, load_model
from wormclean.predict.inference import predict_background
from wormclean.stills.colour import ColourSpace

log = logging.getLogger(__name__)


def load_stills_model(path: str | os.PathLike) -> ModelFile:
    """Load a model file and check that it was trained on still images (``metadata["kind"] == "stills"``)."""
    model = load_model(path)
    kind = model.metadata.get("kind")
    if kind != "stills":
        raise ModelFileError(
            f"{path} is a {kind or 'video'} model; 'wormclean filter' needs a stills model "
            "(trained with 'wormclean fit --crops')"
        )
    return model


def model_colour_space(model: ModelFile) -> ColourSpace:
    """The working space a stills model was trained in."""
    metadata = model.metadata
    try:
        return ColourSpace.from_mode(metadata["colour"], bool(metadata["inverted"]),
                                     model.normalisation.bit_depth)
    except KeyError as error:
        raise ModelFileError(f"{model.path} lacks the stills metadata entry {error}") from None


def run_net(model: ModelFile, working: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    """The net's output for a working image ``(H, W, C)``: float32 ``(H, W, C)`` in working units.

    Through the tiled inference of :mod:`wormclean.predict.inference`, as video frames: large fields are cut
    into tiles, and batches shrink when GPU memory runs out.
    """
    return predict_background(model.net, model.normalisation, working, device=device)


def filter_image(
    model: ModelFile, image: np.ndarray, device: str | torch.device = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Filter one raw image with a stills model.

    Parameters
    ----------
    model : ModelFile
        From :func:`load_stills_model`.
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, at the bit depth the model was trained on.

    Returns
    -------
    filtered : ndarray
        Raw pixels of the input's dtype: ``(H, W)`` for grey/invert models, ``(H, W, 3)`` for rgb models.
    working : ndarray
        ``(H, W, C)`` float32 net output in working units (objects bright), for detection.
    """
    space = model_colour_space(model)
    if bit_depth_of(image) != space.bit_depth:
        raise SettingsError(f"the model was trained on {space.bit_depth}-bit images, this one is "
                            f"{bit_depth_of(image)}-bit")
    working = run_net(model, space.to_working(image), device)
    return space.from_working(working), working
