"""Tile geometry on its own, and tiled inference against one whole-frame pass of an untrained net."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from wormclean.errors import SettingsError
from wormclean.model.modelfile import Normalisation
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict import inference, tiling
from wormclean.predict.inference import predict_background, predict_backgrounds
from wormclean.predict.tiling import min_tile_size, plan_tiles

# Inputs of +-8 around mid-grey: the untrained net's outputs then vary by several grey levels over a frame,
# and float32 rounding of the stitched result stays near 1e-5.
NORMALISATION = Normalisation(offset=128.0, scale=16.0)
TOLERANCE = 5e-5


def check_grid(frame_shape, tile_size, depth):
    multiple, radius = 2**depth, 4 * 2**depth
    grid = plan_tiles(frame_shape, tile_size, radius, multiple)
    height, width = frame_shape
    assert grid.padded_shape == (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
    assert grid.halo == radius  # already on the grid
    assert all(side % multiple == 0 for side in grid.tile_shape)
    assert all(side <= max(tile_size, padded) for side, padded in zip(grid.tile_shape, grid.padded_shape))
    coverage = np.zeros(frame_shape, dtype=np.int32)
    for tile in grid.tiles:
        coverage[tile.keep] += 1
        for axis in range(2):
            window, keep, crop = tile.window[axis], tile.keep[axis], tile.crop[axis]
            assert window.start % multiple == 0
            assert window.stop - window.start == grid.tile_shape[axis]
            assert 0 <= window.start and window.stop <= grid.padded_shape[axis]
            assert crop.start == keep.start - window.start and crop.stop - crop.start == keep.stop - keep.start
            # An edge inside the padded frame is at least one halo away from what the tile keeps.
            if window.start > 0:
                assert keep.start - window.start >= grid.halo
            if window.stop < grid.padded_shape[axis]:
                assert window.stop - keep.stop >= grid.halo
    assert (coverage == 1).all(), "every pixel must be written by exactly one tile"
    return grid


@pytest.mark.parametrize(
    "frame_shape", [(2048, 2048), (2192, 2736), (255, 221), (37, 90), (1, 1), (300, 170), (64, 64)]
)
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_tiles_cover_every_pixel_once_on_the_grid(frame_shape, depth):
    smallest = min_tile_size(4 * 2**depth, 2**depth)
    sizes = {256, 512, 1024} if max(frame_shape) > 1000 else {smallest, smallest + 2**depth, 256}
    for tile_size in sorted(size for size in sizes if size >= smallest):
        check_grid(frame_shape, tile_size, depth)


def test_frame_smaller_than_the_tile_is_one_tile():
    grid = check_grid((37, 90), 1024, 5)
    assert len(grid.tiles) == 1 and grid.tile_shape == (64, 96)


def test_tiles_are_shrunk_to_what_covers_the_frame():
    grid = check_grid((2048, 2048), 1024, 5)
    assert len(grid.tiles) == 9 and grid.tile_shape == (864, 864)  # not 9 tiles of 1024: less recomputed
    assert len(check_grid((2192, 2736), 2048, 5).tiles) == 4


def test_too_small_tile_is_a_settings_error():
    with pytest.raises(SettingsError, match="too small.*at least 288"):
        plan_tiles((2048, 2048), 256, 128, 32)
    assert len(plan_tiles((200, 100), 256, 128, 32).tiles) == 1  # fine when the frame fits in one tile


def test_pad_reflects_like_forward_padded():
    grid = plan_tiles((5, 7), 64, 32, 8)
    frame = np.arange(35, dtype=np.float32).reshape(5, 7)
    padded = grid.pad(frame)
    expected = torch.nn.functional.pad(torch.from_numpy(frame)[None, None], (0, 1, 0, 3), mode="reflect")
    np.testing.assert_array_equal(padded, expected[0, 0].numpy())


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return UNet(UNetConfig(width=8, depth=3)).eval()


def whole_frame(net, frame):
    with torch.no_grad():
        values = NORMALISATION.forward(torch.from_numpy(frame.astype(np.float32)))[None, None]
        return NORMALISATION.inverse(net.forward_padded(values))[0, 0].clamp(0, 255).numpy()


@pytest.mark.parametrize(
    "frame_shape, tile_size",
    [
        ((255, 221), 104),
        ((255, 221), 160),
        ((300, 170), 128),
        ((64, 64), 72),
        ((37, 90), 72),
        ((131, 97), 104),
        ((131, 97), 1024),
    ],
)
def test_tiled_equals_whole_frame(net, frame_shape, tile_size):
    frame = np.random.default_rng(1).integers(0, 256, frame_shape).astype(np.uint8)
    expected = whole_frame(net, frame)
    assert expected.std() > 0.5  # the comparison means something: the output varies over the frame
    tiled = predict_background(net, NORMALISATION, frame, tile_size=tile_size, batch_size=3, device="cpu")
    assert tiled.dtype == np.float32 and tiled.shape == frame_shape
    np.testing.assert_allclose(tiled, expected, rtol=0, atol=TOLERANCE)


def test_a_halo_below_the_receptive_field_is_caught(net, monkeypatch):
    """The equality test above can fail: one grid step less of halo changes the output well beyond it."""
    frame = np.random.default_rng(2).integers(0, 256, (131, 97)).astype(np.uint8)
    expected = whole_frame(net, frame)
    too_small = tiling.halo_for
    monkeypatch.setattr(tiling, "halo_for", lambda radius, multiple: too_small(radius, multiple) - multiple)
    tiled = predict_background(net, NORMALISATION, frame, tile_size=104, device="cpu")
    assert np.abs(tiled - expected).max() > 5 * TOLERANCE


def test_batched_frames_of_several_sizes_equal_one_by_one(net):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, shape).astype(np.uint8) for shape in [(100, 120), (64, 64), (100, 120)]]
    batched = predict_backgrounds(net, NORMALISATION, frames, tile_size=104, batch_size=16, device="cpu")
    for frame, background in zip(frames, batched):
        single = predict_background(net, NORMALISATION, frame, tile_size=104, batch_size=1, device="cpu")
        np.testing.assert_allclose(background, single, rtol=0, atol=TOLERANCE)


def test_16bit_frames_come_back_in_raw_units(net):
    normalisation = Normalisation(offset=32768.0, scale=16 * 257.0, bit_depth=16)
    frame = (np.random.default_rng(4).integers(0, 256, (80, 72)) * 257).astype(np.uint16)
    background = predict_background(net, normalisation, frame, device="cpu")
    assert background.dtype == np.float32
    assert 20000 < background.mean() < 45000  # net outputs near 0 map back near mid-range of 16 bits


def test_out_of_memory_halves_the_batch(net, monkeypatch, caplog):
    frame = np.random.default_rng(5).integers(0, 256, (200, 120)).astype(np.uint8)  # 8 tiles of 104
    expected = predict_background(net, NORMALISATION, frame, tile_size=104, batch_size=1, device="cpu")
    calls = []

    def forward(batch):
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return UNet.forward(net, batch)

    monkeypatch.setattr(net, "forward", forward)
    with caplog.at_level(logging.WARNING):
        tiled = predict_background(net, NORMALISATION, frame, tile_size=104, batch_size=8, device="cpu")
    assert calls == [8, 4, 2, 2, 2, 2]
    assert "retrying with batches of 2 tiles" in caplog.text
    np.testing.assert_allclose(tiled, expected, rtol=0, atol=TOLERANCE)


def test_out_of_memory_with_one_tile_says_what_to_do(net, monkeypatch):
    def forward(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(net, "forward", forward)
    # 50x60 plus an 8-pixel reflected margin on every side, rounded up to the 8-pixel grid.
    with pytest.raises(SettingsError, match="single 72x80 tile; use a smaller --tile-size"):
        predict_background(net, NORMALISATION, np.zeros((50, 60), np.uint8), batch_size=1, device="cpu")


def test_half_precision_and_missing_cuda_are_refused_on_the_cpu(net):
    frame = np.zeros((32, 32), np.uint8)
    with pytest.raises(SettingsError, match="half precision is only used on CUDA"):
        predict_background(net, NORMALISATION, frame, device="cpu", half=True)
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="no CUDA GPU"):
            inference.resolve_device("cuda")
    assert inference.resolve_device("cpu").type == "cpu"


def test_reflected_margin_keeps_frame_edges_off_the_zero_padding():
    net = UNet(UNetConfig(width=4, depth=3))
    frame = torch.rand(1, 1, 40, 48)
    margin = net.edge_margin
    padded = torch.nn.functional.pad(frame, (margin,) * 4, mode="reflect")
    # forward_padded sees exactly the reflect-padded frame, cropped back.
    expected = net(torch.nn.functional.pad(padded, (0, -padded.shape[-1] % 8, 0, -padded.shape[-2] % 8),
                                           mode="reflect"))[..., margin : margin + 40, margin : margin + 48]
    torch.testing.assert_close(net.forward_padded(frame), expected)
