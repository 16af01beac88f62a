"""Training data for still images: a stream of synthetic pairs from a CROPS_DIR (``wormclean fit --crops``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from wormclean.data.shards import stream_shard
from wormclean.data.synthesis import BackgroundPatch, CropBank, ObjectCrop, synthesize_pair
from wormclean.data.training_data import TrainingData, fixed_batches, hold_out
from wormclean.errors import SettingsError
from wormclean.model.modelfile import Normalisation
from wormclean.settings import CropFitSettings, SynthesisSettings
from wormclean.stills.store import CropsCatalogue, read_catalogue

log = logging.getLogger(__name__)

VALIDATION_STREAM = 987_654_321  # mixed into the seed of the fixed validation batches


def _working_integers(catalogue: CropsCatalogue, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """A crop's working pixels ``(h, w, C)`` rounded to the source's integer type, and its alpha mask."""
    pixels, alpha = catalogue.load(entry)
    space = catalogue.colour_space
    working = np.rint(space.to_working(pixels))
    return working.astype(np.uint8 if space.bit_depth == 8 else np.uint16), alpha


def load_bank(
    catalogue: CropsCatalogue,
    targets: Sequence[str],
    images: set[str] | None = None,
    max_crops_per_class: int | None = None,
    rng: np.random.Generator | None = None,
) -> CropBank:
    """Read the crops and backgrounds of a catalogue into memory, in working units.

    Parameters
    ----------
    catalogue : CropsCatalogue
    targets : sequence of str
        Classes that are targets; every other class is an "other".
    images : set of str, optional
        Only crops and backgrounds from these source images.
    max_crops_per_class : int, optional
        Keep at most this many crops of each class (a random subset), to bound memory.
    rng : numpy Generator, optional
        Picks the subset.
    """
    rng = rng or np.random.default_rng(0)
    by_class: dict[str, list[dict]] = {}
    for entry in catalogue.index["crops"]:
        if images is None or entry["image"] in images:
            by_class.setdefault(entry["class"], []).append(entry)
    target_crops, other_crops = [], []
    for label, entries in sorted(by_class.items()):
        if max_crops_per_class is not None and len(entries) > max_crops_per_class:
            chosen = rng.choice(len(entries), max_crops_per_class, replace=False)
            entries = [entries[i] for i in sorted(chosen)]
        for entry in entries:
            pixels, mask = _working_integers(catalogue, entry)
            crop = ObjectCrop(pixels, mask, catalogue.background_level(entry["image"]))
            (target_crops if label in targets else other_crops).append(crop)
    backgrounds = [
        BackgroundPatch(*_working_integers(catalogue, entry))
        for entry in catalogue.index["backgrounds"]
        if images is None or entry["image"] in images
    ]
    space = catalogue.colour_space
    return CropBank(target_crops, other_crops, backgrounds, space.top, space.n_channels)


class SyntheticPairDataset(IterableDataset):
    """Endless stream of synthetic pairs ``(input, target)``, float32 tensors ``(C, P, P)`` in raw working
    pixel values (the trainer normalises them on its device with the training data's ``normalisation``).

    Each DataLoader worker draws from its own random stream, seeded by ``(seed, worker id)``; the trainer may
    set ``seed`` before iterating (to continue a resumed run on fresh pairs). The crop bank is shared by the
    workers (read-only), so memory does not grow with the number of pairs.
    """

    def __init__(self, bank: CropBank, settings: SynthesisSettings, seed: int = 0):
        super().__init__()
        self.bank = bank
        self.settings = settings
        self.seed = seed

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One ``(input, target)`` pair, each ``(C, P, P)`` float32 in raw working values ``[0, top]``."""
        pair = synthesize_pair(self.bank, self.settings, rng)
        target = pair.shared if self.settings.clean_target else pair.second
        return self._tensor(pair.first), self._tensor(target)

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        values = np.clip(image, 0, self.bank.top).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, stream_shard(*((info.id, info.num_workers) if info else (0, 1)))[0]])
        while True:
            yield self.sample(rng)


def split_images(
    catalogue: CropsCatalogue, targets: Sequence[str], fraction: float, seed: int
) -> tuple[set[str] | None, set[str] | None]:
    """Source images for training and for validation, split at random by ``fraction``.

    Returns ``(None, None)`` (no split: validation pairs come from the training crops) when the fraction
    rounds to no image, or when either side would lack target crops.
    """
    names = sorted(catalogue.index["images"])
    n_validation = int(round(fraction * len(names)))
    if n_validation == 0 or n_validation >= len(names):
        return None, None
    kept, held_out = hold_out(names, n_validation, np.random.default_rng([seed, VALIDATION_STREAM]))
    training, validation = set(kept), set(held_out)
    with_targets = {entry["image"] for entry in catalogue.index["crops"] if entry["class"] in targets}
    if not (with_targets & validation and with_targets & training):
        return None, None
    return training, validation


def crop_training_data(
    crops_dir: str | os.PathLike,
    targets: Sequence[str] | None,
    settings: CropFitSettings | None = None,
    seed: int = 0,
    **options,
) -> TrainingData:
    """Everything the trainer needs to learn a still-image filter from a CROPS_DIR.

    Parameters
    ----------
    crops_dir : path
        Written by ``wormclean crops``.
    targets : sequence of str
        Classes to keep (``mode="keep"``) or to remove (``mode="remove"``); the other classes are the others.
    settings : CropFitSettings, optional
        How (:class:`~wormclean.settings.CropFitSettings`); without them, ``options`` are their flat keywords
        (``patch_size=64``, ``validation_fraction=0.2``, ``n_targets=(1, 2)``: see
        :meth:`~wormclean.settings.CropFitSettings.from_options`).
    seed : int
        Seeds the pair stream (with the worker id) and the validation split.

    Returns
    -------
    TrainingData
        ``dataset`` yields ``(input, target)`` float32 ``(C, P, P)`` in raw working values, to be normalised
        with ``normalisation`` (the trainer does it); ``validation`` likewise; ``metadata`` has ``kind``
        "stills", ``targets``, ``others``, ``mode``, ``colour``, ``inverted``, ``bit_depth`` and the synthesis
        settings.
    """
    if settings is not None and options:
        raise TypeError("give settings or their keywords, not both")
    settings = settings or CropFitSettings.from_options(**options)
    catalogue = read_catalogue(crops_dir)
    classes = catalogue.classes
    if not targets:
        raise SettingsError(f"name the target classes (--targets), among: {', '.join(classes)}")
    unknown = [name for name in targets if name not in classes]
    if unknown:
        raise SettingsError(f"no crops of class {', '.join(unknown)} in {crops_dir}; it holds {', '.join(classes)}")
    synthesis = settings.synthesis
    others = [name for name in classes if name not in targets]
    if not others:
        log.warning("every class is a target: pairs will differ only in their backgrounds")
    space = catalogue.colour_space
    normalisation = Normalisation.for_bit_depth(space.bit_depth, log=settings.log_scale)
    rng = np.random.default_rng(seed)
    training_images, validation_images = split_images(catalogue, targets, settings.validation_fraction, seed)
    bank = load_bank(catalogue, targets, training_images, settings.max_crops_per_class, rng)
    dataset = SyntheticPairDataset(bank, synthesis, seed)
    if validation_images is None:
        validation_source = dataset
    else:
        validation_bank = load_bank(catalogue, targets, validation_images, settings.max_crops_per_class, rng)
        validation_source = SyntheticPairDataset(validation_bank, synthesis, seed)
    validation_rng = np.random.default_rng([seed, VALIDATION_STREAM])
    pairs = iter(lambda: validation_source.sample(validation_rng), None)
    validation = fixed_batches(pairs, settings.validation_batches, settings.validation_batch_size)
    synthesis_record = {
        key: list(value) if isinstance(value, tuple) else value for key, value in asdict(synthesis).items()
    }
    metadata = {
        "kind": "stills",
        "targets": list(targets),
        "others": others,
        "mode": synthesis.mode,
        "colour": space.mode,
        "inverted": space.inverted,
        "bit_depth": space.bit_depth,
        "crops_dir": str(Path(crops_dir).resolve()),
        "crop_counts": catalogue.index["counts"],
        "validation_images": sorted(validation_images) if validation_images else [],
        "synthesis": synthesis_record,
    }
    log.info("stills training data: %d target crops, %d other crops, %d backgrounds; %d validation images",
             len(bank.targets), len(bank.others), len(bank.backgrounds), len(validation_images or ()))
    return TrainingData(dataset, validation, normalisation, space.n_channels, metadata)
