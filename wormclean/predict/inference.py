"""Tiled inference: the net's output for whole frames or images of any size, on the CPU or CUDA.

Frames (grey ``(H, W)``, or ``(H, W, C)`` with as many channels as the net takes) are cut into equal tiles
(:mod:`wormclean.predict.tiling`), tiles of all frames in a call are batched, and the outputs are cropped and
stitched, so the result equals one whole-frame pass. On CUDA the net runs in
fp16 autocast with ``channels_last`` (outputs are mapped back to pixels in float32); on the CPU it runs in
float32 (bf16 autocast is 7-300x slower on CPUs without AMX). When CUDA runs out of memory the batch is halved
and the work retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from wormclean.errors import SettingsError
from wormclean.model.device import resolve_device
from wormclean.model.modelfile import Normalisation
from wormclean.model.unet import UNet
from wormclean.padding import pad_image
from wormclean.predict.tiling import TileGrid, plan_tiles

log = logging.getLogger(__name__)

# Largest tile per device. On the CPU a 1024 tile of the full net needs about 1.5 GB and runs at about the
# per-pixel speed of a whole 2048^2 frame (which needs 6 GB); a GPU fits whole frames in fp16.
DEFAULT_TILE_SIZE = {"cpu": 1024, "cuda": 2048}
DEFAULT_BATCH_SIZE = {"cpu": 1, "cuda": 4}


def _use_half(device: torch.device, half: bool | None) -> bool:
    if half is None:
        return device.type == "cuda"
    if half and device.type != "cuda":
        raise SettingsError("half precision is only used on CUDA (on the CPU it is many times slower)")
    return half


def prepare_net(net: UNet, device: torch.device) -> UNet:
    """Move ``net`` (in place) to ``device`` in eval mode; ``channels_last`` on CUDA. Cheap if already done."""
    net = net.to(device).eval()
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net


def _forward_batches(
    net: UNet,
    normalisation: Normalisation,
    inputs: np.ndarray,
    batch_size: int,
    device: torch.device,
    half: bool,
    raw: bool = False,
) -> np.ndarray:
    """Net outputs in raw pixel units for raw windows ``(n, h, w, C)``: float32 ``(n, h, w, C)``; with ``raw``
    the net's own outputs (a worm filter's logits), neither mapped back nor clipped."""
    outputs = np.empty(inputs.shape[:3] + (net.config.out_channels,), dtype=np.float32)
    top = float(2**normalisation.bit_depth - 1)
    start = 0
    while start < len(inputs):
        stop = min(start + batch_size, len(inputs))
        try:
            with torch.inference_mode():
                batch = normalisation.forward(torch.from_numpy(inputs[start:stop]).to(device)).permute(0, 3, 1, 2)
                if device.type == "cuda":
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=half):
                    predicted = net(batch)
                predicted = predicted.float().permute(0, 2, 3, 1)
                pixels = predicted if raw else normalisation.inverse(predicted).clamp_(0.0, top)
                outputs[start:stop] = pixels.cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch_size == 1:
                raise SettingsError(
                    f"out of GPU memory with a single {inputs.shape[1]}x{inputs.shape[2]} tile; "
                    "use a smaller --tile-size"
                ) from None
            batch_size = max(1, batch_size // 2)
            log.warning("out of GPU memory: retrying with batches of %d tiles", batch_size)
            continue
        start = stop
    return outputs


def predict_backgrounds(
    net: UNet,
    normalisation: Normalisation,
    frames: Sequence[np.ndarray],
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    half: bool | None = None,
    raw: bool = False,
) -> list[np.ndarray]:
    """The net's output (the background of a video model) for several frames, with the tiles of all frames
    batched together.

    Parameters
    ----------
    net : UNet
        The model's net (as many input channels as the frames have); moved in place to ``device``.
    normalisation : Normalisation
        The model's mapping between raw pixels and net values.
    frames : sequence of np.ndarray
        ``(H, W)`` grey or ``(H, W, C)`` uint8/uint16/float frames in raw pixel units; sizes may differ.
    tile_size : int, optional
        Largest tile side in pixels (default 1024 on the CPU, 2048 on CUDA). Frames smaller than a tile are
        one tile.
    batch_size : int, optional
        Tiles per forward pass (default 1 on the CPU, 4 on CUDA); halved on CUDA out-of-memory errors.
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    half : bool, optional
        fp16 autocast; default on for CUDA, refused on the CPU.
    raw : bool
        The net's outputs as they are (a worm filter's logits), not mapped to pixels.

    Returns
    -------
    list of np.ndarray
        One float32 output per frame, in raw pixel units clipped to the model's bit depth (unless ``raw``):
        ``(H, W)`` for a grey frame, ``(H, W, C)`` (the net's output channels) for one with channels.
    """
    grey = [frame.ndim == 2 for frame in frames]
    frames = [frame[..., None] if is_grey else frame for frame, is_grey in zip(frames, grey)]
    for frame in frames:
        if frame.ndim != 3 or frame.shape[2] != net.config.in_channels:
            raise SettingsError(f"the net takes {net.config.in_channels} channel(s); got a frame of shape "
                                f"{frame.shape[:2] if frame.shape[2:] == (1,) else frame.shape}")
    device = resolve_device(device)
    half = _use_half(device, half)
    tile_size = tile_size or DEFAULT_TILE_SIZE[device.type]
    batch_size = batch_size or DEFAULT_BATCH_SIZE[device.type]
    if batch_size < 1:
        raise SettingsError(f"batch size must be at least 1, got {batch_size}")
    net = prepare_net(net, device)
    # Reflected context on every side, as UNet.forward_padded adds, so the frame's edges are no tile edges.
    margin = net.edge_margin
    frames = [_pad_margin(frame, margin) for frame in frames]
    grids: dict[tuple[int, int], TileGrid] = {}
    for shape in dict.fromkeys(frame.shape[:2] for frame in frames):
        grids[shape] = plan_tiles(shape, tile_size, net.receptive_field_radius(), net.config.multiple)
    backgrounds: list[np.ndarray | None] = [None] * len(frames)
    for shape, grid in grids.items():
        members = [i for i, frame in enumerate(frames) if frame.shape[:2] == shape]
        # float32 before torch: torch has no general uint16 support.
        windows = np.concatenate([grid.windows(grid.pad(frames[i])) for i in members]).astype(np.float32)
        outputs = _forward_batches(net, normalisation, windows, batch_size, device, half, raw)
        n_tiles = len(grid.tiles)
        for k, i in enumerate(members):
            stitched = grid.stitch(outputs[k * n_tiles : (k + 1) * n_tiles])
            background = stitched[margin:-margin, margin:-margin]
            backgrounds[i] = np.ascontiguousarray(background[..., 0] if grey[i] else background)
    return backgrounds


def _pad_margin(frame: np.ndarray, margin: int) -> np.ndarray:
    """Reflect-pad an ``(H, W, C)`` frame by ``margin`` on every side (edge replication where it is too small)."""
    return pad_image(frame, (margin, margin), (margin, margin))


def predict_background(
    net: UNet,
    normalisation: Normalisation,
    frame: np.ndarray,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    half: bool | None = None,
) -> np.ndarray:
    """The net's output for one ``(H, W)`` or ``(H, W, C)`` frame: float32 of the same shape, in raw pixel units.

    See :func:`predict_backgrounds` for the parameters.
    """
    return predict_backgrounds(net, normalisation, [frame], tile_size, batch_size, device, half)[0]
