"""Self-describing model files.

A model file is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    format          "wormclean-model"
    format_version  1
    wormclean_version
    architecture    UNetConfig as a dict
    normalisation   Normalisation as a dict: how raw pixels become net inputs and back
    metadata        what it was trained on and how: kind ("video" or "stills"), lag_frames, dark_worms,
                    training videos, steps, validation loss, ...
    state_dict      the weights

Training checkpoints add a ``training`` entry (optimizer state, step, random states) used by ``--resume``.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from wormclean._version import __version__
from wormclean.errors import ModelFileError
from wormclean.io.atomic import atomic_output
from wormclean.model.unet import UNet, UNetConfig

FORMAT = "wormclean-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Normalisation:
    """Maps raw pixel values to net inputs: ``(f(x) - offset) / scale`` with ``f = log1p`` if ``log``.

    ``bit_depth`` is the bit depth of the data the model was trained on (8 or 16); outputs are mapped back and
    clipped to that range.
    """

    offset: float = 0.0
    scale: float = 255.0
    log: bool = False
    bit_depth: int = 8

    def __post_init__(self):
        if not (math.isfinite(self.offset) and math.isfinite(self.scale)):
            raise ModelFileError(
                f"normalisation holds values that are not finite numbers (offset {self.offset}, scale {self.scale})"
            )
        if not self.scale > 0:
            raise ModelFileError(f"normalisation scale must be positive, got {self.scale}")
        if self.bit_depth not in (8, 16):
            raise ModelFileError(f"normalisation bit depth must be 8 or 16, got {self.bit_depth}")

    @classmethod
    def from_samples(cls, pixels: np.ndarray, bit_depth: int, log: bool = False) -> Normalisation:
        """Centre on the median of sample ``pixels`` and scale by their spread (standard deviation).

        The net then starts near the typical background (an output of 0 is the median), which a linear output
        layer otherwise has to learn first.
        """
        values = np.log1p(pixels.astype(np.float64)) if log else pixels.astype(np.float64)
        floor = 1e-3 if log else 1.0
        return cls(offset=float(np.median(values)), scale=max(float(values.std()), floor), log=log,
                   bit_depth=bit_depth)

    @classmethod
    def for_bit_depth(cls, bit_depth: int, log: bool = False) -> Normalisation:
        """The default for integer images of ``bit_depth`` bits: full range to [0, 1] (log1p range if log)."""
        top = float(2**bit_depth - 1)
        return cls(offset=0.0, scale=math.log1p(top) if log else top, log=log, bit_depth=bit_depth)

    def forward(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Raw pixels (any integer or float dtype) to float32 net inputs."""
        if isinstance(pixels, torch.Tensor):
            values = pixels.float()
            values = torch.log1p(values) if self.log else values
        else:
            values = pixels.astype(np.float32)
            values = np.log1p(values) if self.log else values
        return (values - self.offset) / self.scale

    def inverse(self, values: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Net outputs back to raw pixel values (float, not clipped)."""
        values = values * self.scale + self.offset
        if self.log:
            return torch.expm1(values) if isinstance(values, torch.Tensor) else np.expm1(values)
        return values

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelFile:
    """A loaded model: the net with its architecture, normalisation and metadata."""

    net: UNet
    normalisation: Normalisation
    metadata: dict = field(default_factory=dict)
    training: dict | None = None
    path: Path | None = None

    @property
    def config(self) -> UNetConfig:
        return self.net.config


def model_payload(
    net: UNet, normalisation: Normalisation, metadata: dict, training: dict | None = None
) -> dict:
    """The dict that :func:`save_model` writes; weights are copied to the CPU."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "wormclean_version": __version__,
        "architecture": net.config.to_dict(),
        "normalisation": normalisation.to_dict(),
        "metadata": metadata,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()},
    }
    if training is not None:
        payload["training"] = training
    return payload


def save_model(
    path: str | os.PathLike,
    net: UNet,
    normalisation: Normalisation,
    metadata: dict,
    training: dict | None = None,
) -> Path:
    """Write a model file atomically (a reader never sees half a file), replacing any existing one.

    Raises :class:`~wormclean.errors.ModelFileError` if a weight is not finite (a training run that diverged),
    and :class:`~wormclean.errors.OutputError` if the file cannot be written (a full disk, say).
    """
    payload = model_payload(net, normalisation, metadata, training)
    _check_finite(payload["state_dict"], f"the model for {path}")
    # Serialised in memory first: torch.save reports a failed write without its cause, Python's write with it.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_bytes(buffer.getbuffer())
    return Path(path)


def _check_finite(state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`ModelFileError` if a floating-point tensor of ``state_dict`` holds NaN or infinity."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{what} has weights that are not finite numbers ({name}); training diverged")


def _one_line(error: BaseException) -> str:
    """An error's message on one line."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _weights_mismatch(expected: dict[str, torch.Tensor], given: dict) -> str | None:
    """What keeps ``given`` weights from fitting a net whose state dict is ``expected``, or None if they fit."""

    def names(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    wrong = [
        key
        for key in expected
        if key in given and tuple(getattr(given[key], "shape", ())) != tuple(expected[key].shape)
    ]
    parts = [
        f"{len(keys)} {what} ({names(keys)})"
        for keys, what in ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of the wrong shape"))
        if keys
    ]
    return "weights " + "; ".join(parts) if parts else None


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ModelFile:
    """Load and check a model file; raise :class:`~wormclean.errors.ModelFileError` with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for non-torch or damaged files
        raise ModelFileError(f"{path} is not a wormclean model file (cannot be read: {type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a wormclean model file")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version}; this wormclean (version {__version__}) reads "
            f"version {FORMAT_VERSION}"
        )
    try:
        config = UNetConfig(**payload["architecture"])
        normalisation = Normalisation(**payload["normalisation"])
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path} is a damaged wormclean model file ({_one_line(error)})") from None
    try:
        net = UNet(config)
        mismatch = _weights_mismatch(net.state_dict(), payload["state_dict"])
        if mismatch is not None:
            raise ModelFileError(f"{path} does not fit its architecture {config}: {mismatch}")
        net.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ModelFileError(f"{path} is a damaged wormclean model file ({_one_line(error)})") from None
    _check_finite(payload["state_dict"], str(path))
    net.eval()
    return ModelFile(
        net=net,
        normalisation=normalisation,
        metadata=dict(payload.get("metadata", {})),
        training=payload.get("training"),
        path=path,
    )
