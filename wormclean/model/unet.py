"""The Noise2Noise U-Net (Lehtinen et al. 2018), with width and depth as settings.

At the defaults (width 48, depth 5) it is the paper's net: in->48, five 48-channel levels each ending in a 2x2
max-pool, a 48-channel bottleneck, a decoder of 96 channels (144 in after each skip concatenation) with nearest
upsampling, then 64 -> 32 -> out channels, LeakyReLU 0.1, no batch norm, linear output; 988,609 parameters for
one grey channel in and out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wormclean.errors import SettingsError
from wormclean.padding import reflects


@dataclass(frozen=True)
class UNetConfig:
    """Architecture settings of :class:`UNet`; saved in every model file.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grey frames, 3 for RGB stills.
    width : int
        Channels of the encoder levels (48 in the paper). The decoder uses 2 * width, and its last two
        convolutions 4/3 and 2/3 of width.
    depth : int
        Number of 2x2 max-pool levels; inputs are padded to a multiple of ``2 ** depth``.
    """

    in_channels: int = 1
    out_channels: int = 1
    width: int = 48
    depth: int = 5

    def __post_init__(self):
        if self.in_channels < 1 or self.out_channels < 1:
            raise SettingsError("a U-Net needs at least one input and one output channel")
        if self.width < 4:
            raise SettingsError(f"--width must be at least 4, got {self.width}")
        if not 1 <= self.depth <= 8:
            raise SettingsError(f"depth must be between 1 and 8, got {self.depth}")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    def to_dict(self) -> dict:
        return asdict(self)


def _pad_mode(height: int, width: int, pad_h: int, pad_w: int) -> str:
    """Torch's name of the padding :func:`~wormclean.padding.reflects` picks."""
    return "reflect" if reflects(height, width, pad_h, pad_w) else "replicate"


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class UNet(nn.Module):
    """Noise2Noise U-Net mapping ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H, W)``.

    ``H`` and ``W`` must be multiples of ``config.multiple``; :meth:`forward_padded` pads any size by
    reflection and crops the result back.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = config or UNetConfig()
        width, depth = self.config.width, self.config.depth
        self.encoder_in = nn.ModuleList([_conv(self.config.in_channels, width), _conv(width, width)])
        self.encoder = nn.ModuleList([_conv(width, width) for _ in range(depth - 1)])
        self.bottleneck = _conv(width, width)
        # Decoder levels from the deepest up; each takes the upsampled features plus the skip of its level.
        decoder = []
        for level in range(depth - 1):
            upsampled = width if level == 0 else 2 * width
            decoder.append(nn.ModuleList([_conv(upsampled + width, 2 * width), _conv(2 * width, 2 * width)]))
        self.decoder = nn.ModuleList(decoder)
        last_in = (width if depth == 1 else 2 * width) + self.config.in_channels
        first, second = round(width * 4 / 3), round(width * 2 / 3)
        self.decoder_out = nn.ModuleList([_conv(last_in, first), _conv(first, second)])
        self.output = _conv(second, self.config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.1, inplace=True)  # noqa: E731  (on a fresh conv output: no copy)
        skips = [x]
        h = act(self.encoder_in[1](act(self.encoder_in[0](x))))
        h = F.max_pool2d(h, 2)
        skips.append(h)
        for conv in self.encoder:
            h = F.max_pool2d(act(conv(h)), 2)
            skips.append(h)
        h = act(self.bottleneck(h))
        skips.pop()  # the deepest pooled map is the bottleneck's input, not a skip
        for convs in self.decoder:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([h, skips.pop()], dim=1)
            h = act(convs[1](act(convs[0](h))))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = torch.cat([h, skips.pop()], dim=1)
        h = act(self.decoder_out[1](act(self.decoder_out[0](h))))
        return self.output(h)

    @property
    def edge_margin(self) -> int:
        """Pixels of reflected context added on every side of a frame before the net sees it.

        Without it the frame's own edges meet the convolutions' zero padding, and a briefly trained net gets
        the background wrong there by several grey levels (seen on the shipped model: 3.7 against 0.8 inside).
        """
        return self.config.multiple

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Forward any ``(batch, channels, H, W)``: reflect-pad ``edge_margin`` on every side, then at the
        bottom and right to a multiple of ``2 ** depth``; crop the result back to ``(H, W)``.
        """
        height, width = x.shape[-2:]
        margin = self.edge_margin
        x = F.pad(x, (margin,) * 4, mode=_pad_mode(height, width, margin, margin))
        multiple = self.config.multiple
        pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=_pad_mode(x.shape[-2], x.shape[-1], pad_h, pad_w))
        return self(x)[..., margin : margin + height, margin : margin + width]

    def receptive_field_radius(self) -> int:
        """How far (in pixels) an output pixel can see in each direction: ``4 * 2 ** depth``.

        The deepest path (bottleneck and first decoder level, at stride ``2 ** depth``) dominates; the bound
        includes the slack of the pooling grid and is checked by gradient in the tests. Used as the minimal
        halo when frames are cut into tiles.
        """
        return 4 * self.config.multiple

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
