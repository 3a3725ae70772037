"""Video frontend: mouth-ROI frames -> 3D convolution + 2D ResNet trunk -> one vector per frame."""

from typing import List, Optional, Sequence, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.frontend.abs_video_frontend import AbsVideoFrontend


TRUNK_ACTIVATIONS = ("relu", "prelu")


class BasicBlock(torch.nn.Module):
    """ResNet basic block: two 3x3 convolutions with a residual connection.

    ``activation``: ``relu`` (one parameter-free ``act``) or ``prelu`` (``act1`` after
    the first convolution and ``act2`` after the residual sum, one learned slope per
    channel each, as AV-HuBERT's trunk).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str = "relu"):
        super().__init__()
        if activation not in TRUNK_ACTIVATIONS:
            raise ValueError(
                f"trunk_activation must be one of {TRUNK_ACTIVATIONS}, got {activation!r}"
            )
        self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(out_channels)
        self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(out_channels)
        if activation == "relu":
            self.act = torch.nn.ReLU(inplace=True)
            self.act1 = self.act2 = self.act
        else:
            self.act1 = torch.nn.PReLU(out_channels)
            self.act2 = torch.nn.PReLU(out_channels)
        self.downsample: Optional[torch.nn.Module] = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                torch.nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + residual)


class ResNetVideoFrontend(AbsVideoFrontend):
    """Lip-reading frontend of AV-HuBERT / Auto-AVSR shape.

    ``(B, T, H, W)`` gray frames in [0, 255] -> [average-pool by ``downsample``] ->
    scale to [0, 1] -> normalise with ``mean``/``std`` -> crop ``crop_size`` (train: one random offset per utterance and
    a horizontal flip with probability ``flip_prob``; eval: centre) -> 3D convolution
    (kernel ``(5, 7, 7)``, stride ``(1, 2, 2)``) + BN + PReLU + 3x3 max-pool ->
    per-frame 2D ResNet (``layers`` basic blocks per stage, widths
    ``channels * 2**stage``) -> global average pool -> ``(B, T, channels * 2**(n-1))``.

    Output length: the time kernel 5 with padding 2 and stride 1 keeps every frame,
    ``T_out = T + 2*2 - 5 + 1 = T``.

    Padding frames are zero after normalisation, exactly like the zero padding of the
    time convolution, and the 2D trunk runs on valid frames only; so an utterance's
    features do not depend on the batch it is in (eval mode).

    Args:
        channels: Width of the first stage (ResNet-18: 64).
        layers: Basic blocks per stage (ResNet-18: (2, 2, 2, 2)).
        crop_size: Side of the square crop fed to the network (88 for 96x96 ROIs).
        mean: Pixel mean after scaling to [0, 1].
        std: Pixel standard deviation after scaling to [0, 1].
        random_crop: Random crop offsets in training (else the centre crop).
        flip_prob: Probability of a horizontal flip per utterance in training.
        downsample: Average-pool the frames by this factor first (1: off); a CPU-sized
            model can read 96x96 ROIs at 48x48 (``crop_size`` is then in pooled pixels).
        trunk_activation: ``relu``, or ``prelu`` (per-channel learned slopes, as
            AV-HuBERT's trunk; needed to take its trunk over exactly).
    """

    @typechecked
    def __init__(
        self,
        channels: int = 64,
        layers: Sequence[int] = (2, 2, 2, 2),
        crop_size: int = 88,
        mean: float = 0.421,
        std: float = 0.165,
        random_crop: bool = True,
        flip_prob: float = 0.5,
        downsample: int = 1,
        trunk_activation: str = "relu",
    ):
        super().__init__()
        if channels < 1 or len(layers) < 1 or min(layers) < 1:
            raise ValueError(
                f"ResNetVideoFrontend: channels and layers must be positive, got "
                f"channels={channels}, layers={list(layers)}"
            )
        if downsample < 1:
            raise ValueError(f"ResNetVideoFrontend: downsample must be >= 1, got {downsample}")
        if trunk_activation not in TRUNK_ACTIVATIONS:
            raise ValueError(
                f"ResNetVideoFrontend: trunk_activation must be one of {TRUNK_ACTIVATIONS}, "
                f"got {trunk_activation!r}"
            )
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"ResNetVideoFrontend: flip_prob must be in [0, 1], got {flip_prob}")
        self.crop_size = crop_size
        self.mean = mean
        self.std = std
        self.random_crop = random_crop
        self.flip_prob = flip_prob
        self.downsample = downsample
        self.layers = tuple(layers)
        self.trunk_activation = trunk_activation
        self.frontend3d = torch.nn.Sequential(
            torch.nn.Conv3d(1, channels, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            torch.nn.BatchNorm3d(channels),
            torch.nn.PReLU(channels),
            torch.nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        stages: List[torch.nn.Module] = []
        in_ch = channels
        for i, n_blocks in enumerate(layers):
            out_ch = channels * 2**i
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(BasicBlock(in_ch, out_ch, stride, trunk_activation))
                in_ch = out_ch
        self.trunk = torch.nn.Sequential(*stages)
        self._output_size = in_ch

    def output_size(self) -> int:
        return self._output_size

    def _crop_and_flip(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) -> (B, T, crop, crop)."""
        batch, _, height, width = video.shape
        c = self.crop_size
        if height < c or width < c:
            raise ValueError(
                f"ResNetVideoFrontend: frames of {height}x{width} are smaller than "
                f"crop_size {c}"
            )
        y0, x0 = (height - c) // 2, (width - c) // 2
        if not self.training:
            return video[:, :, y0 : y0 + c, x0 : x0 + c]
        out = []
        for b in range(batch):
            if self.random_crop:
                y0 = int(torch.randint(0, height - c + 1, (1,)))
                x0 = int(torch.randint(0, width - c + 1, (1,)))
            crop = video[b, :, y0 : y0 + c, x0 : x0 + c]
            if self.flip_prob > 0 and float(torch.rand(1)) < self.flip_prob:
                crop = crop.flip(-1)
            out.append(crop)
        return torch.stack(out)

    def forward(
        self, video: torch.Tensor, video_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode frames.

        Args:
            video: Frames (B, T, H, W), values in [0, 255], zero-padded in time.
            video_lengths: Valid frames per utterance (B,).

        Returns:
            Features (B, T, output_size) with zeros past each length, and lengths (B,).
        """
        assert video.dim() == 4, f"expected (B, T, H, W) frames, got {tuple(video.shape)}"
        batch, time = video.shape[:2]
        valid = torch.arange(time, device=video.device)[None, :] < video_lengths[:, None]
        x = video.float()
        if self.downsample > 1:
            # (B, T, H, W) -> (B, T, H / d, W / d)
            x = torch.nn.functional.avg_pool2d(x, self.downsample)
        x = self._crop_and_flip(x)
        x = (x / 255.0 - self.mean) / self.std
        x = x * valid[:, :, None, None].to(x.dtype)
        # (B, T, H, W) -> (B, 1, T, H, W) -> (B, C, T, H', W')
        x = self.frontend3d(x.unsqueeze(1))
        # (B, C, T, H', W') -> (B, T, C, H', W') -> (N_valid, C, H', W')
        x = x.transpose(1, 2)[valid]
        x = self.trunk(x)
        # (N_valid, C', h, w) -> (N_valid, C')
        x = x.mean(dim=(2, 3))
        out = x.new_zeros(batch, time, self._output_size)
        out[valid] = x
        return out, video_lengths
