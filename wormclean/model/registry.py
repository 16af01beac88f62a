"""Named models shipped with wormclean: ``models/registry.json`` maps a name to a file and its checksum.

Registry format::

    {
      "default": "NAME" or null,
      "models": {"NAME": {"file": "NAME.pt", "sha256": "...", "description": "..."}}
    }

The files live in the package ``wormclean.models`` when wormclean is installed (setup.cfg maps it to the
top-level ``models/`` folder), or in ``models/`` of a clone when run from one. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path

from wormclean.errors import ModelFileError

REGISTRY_FILE = "registry.json"
_CLONE_MODELS = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class RegisteredModel:
    """One registry entry: ``name``, ``file`` (resolved path), ``sha256`` and ``description``."""

    name: str
    file: Path
    sha256: str
    description: str = ""


def models_folder() -> Path:
    """The folder holding ``registry.json`` and the shipped model files."""
    try:
        installed = Path(str(importlib.resources.files("wormclean.models")))
    except ModuleNotFoundError:
        installed = None
    if installed is not None and (installed / REGISTRY_FILE).is_file():
        return installed
    return _CLONE_MODELS


def read_registry(folder: Path | None = None) -> tuple[str | None, dict[str, RegisteredModel]]:
    """The default model's name (or None) and every registered model, from ``folder/registry.json``."""
    folder = models_folder() if folder is None else Path(folder)
    path = folder / REGISTRY_FILE
    if not path.is_file():
        return None, {}
    try:
        registry = json.loads(path.read_text())
        models = {
            name: RegisteredModel(name, folder / entry["file"], entry["sha256"], entry.get("description", ""))
            for name, entry in registry.get("models", {}).items()
        }
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ModelFileError(f"the model registry {path} is damaged ({error})") from None
    return registry.get("default"), models


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name_or_path: str | os.PathLike | None = None, folder: Path | None = None) -> Path:
    """The model file for ``--model``: a path to a file, a registered name, or None for the default model.

    A registered file is checked against its SHA-256 before use.

    Raises
    ------
    ModelFileError
        No default model is installed, the name is unknown, the path is missing, or a registered file is
        missing or damaged.
    """
    default, models = read_registry(folder)
    if name_or_path is None:
        if default is None:
            raise ModelFileError("no default model is installed; pass --model PATH")
        name_or_path = default
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text not in models:
        if os.sep in text or "/" in text or path.suffix:
            raise ModelFileError(f"model file {path} does not exist")
        known = ", ".join(sorted(models)) or "none are installed"
        raise ModelFileError(f"unknown model {text!r} (registered models: {known}); or pass --model PATH")
    entry = models[text]
    if not entry.file.is_file():
        raise ModelFileError(f"model {text!r} is registered but its file {entry.file} is missing; reinstall wormclean")
    if file_sha256(entry.file) != entry.sha256:
        raise ModelFileError(
            f"model {text!r} ({entry.file}) is damaged: its SHA-256 does not match the registry; reinstall wormclean"
        )
    return entry.file
