"""StarGAN generator and discriminator, key-for-key compatible with yunjey/stargan ``model.py``.

The sayeh1994/synthesizin_facial_expression fork uses the same ``model.py`` byte for byte, so its
``{iters}-G.ckpt`` / ``-D.ckpt`` files load here too (``docs/generators.md``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d(affine, track_running_stats) that normalises with per-instance statistics.

    yunjey's solver never calls ``.eval()``, so the published outputs come from per-instance
    statistics; the running buffers are kept (and updated while training) only so checkpoints
    load strictly. In eval mode we therefore still use the input statistics, not the buffers.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each (sample, channel) plane; update running stats only while training."""
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ResidualBlock(nn.Module):
    """Residual block with instance normalisation: ``x + main(x)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the residual branch."""
        return x + self.main(x)


class Generator(nn.Module):
    """StarGAN generator G(x, c): down-sampling, ``repeat_num`` residual blocks, up-sampling."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 7, repeat_num: int = 6) -> None:
        super().__init__()
        self.conv_dim, self.c_dim, self.repeat_num = conv_dim, c_dim, repeat_num
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), InstanceNorm(conv_dim), nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), InstanceNorm(dim * 2), nn.ReLU(inplace=True)]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]  # bottleneck
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False), InstanceNorm(dim // 2),
                       nn.ReLU(inplace=True)]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Translate images ``x`` (N, 3, H, W) in [-1, 1] to the domains ``c`` (N, c_dim)."""
        c = c.to(x.dtype).view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))  # RGB first, then the label planes


class Discriminator(nn.Module):
    """StarGAN PatchGAN discriminator with an auxiliary domain classifier."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 7, repeat_num: int = 6) -> None:
        super().__init__()
        self.image_size, self.conv_dim, self.c_dim, self.repeat_num = image_size, conv_dim, c_dim, repeat_num
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        kernel_size = image_size // 2**repeat_num
        if kernel_size < 1:
            raise ValueError(f"image_size {image_size} too small for repeat_num {repeat_num}")
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (out_src (N, 1, S/2^R, S/2^R), out_cls (N, c_dim)) for images ``x``."""
        h = self.main(x)
        out_src = self.conv1(h)
        out_cls = self.conv2(h)
        return out_src, out_cls.view(out_cls.size(0), out_cls.size(1))
