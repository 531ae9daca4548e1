"""StarGAN generator and discriminator, key-for-key compatible with yunjey/stargan ``model.py``.

The sayeh1994/synthesizin_facial_expression fork uses the same ``model.py`` byte for byte, so its
``{iters}-G.ckpt`` / ``-D.ckpt`` files load here too (``docs/generators.md``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import STARGAN_HEADS as HEADS  # what G's last layer outputs: the paper's RGB image, or a warp


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


FLOW_POOL = 4  # the warp's flow is predicted on a grid this many times coarser, so it moves regions, not pixels


class Generator(nn.Module):
    """StarGAN generator G(x, c): down-sampling, ``repeat_num`` residual blocks, up-sampling, then a head.

    ``head="image"`` is yunjey's (and the paper's): a 7x7 convolution to RGB and tanh, with his keys.
    ``head="warp"`` moves the input's pixels instead of repainting them: a 7x7 convolution, started at
    zero so that G starts as the identity, outputs a flow field (2 channels, ``tanh * max_shift`` in
    grid_sample's [-1, 1] coordinates, pooled ``FLOW_POOL`` x and upsampled so it is smooth) that
    resamples the input, plus a colour residual (3 channels, ``tanh * residual_bound``) for what a
    warp cannot make (teeth, shading). Its trunk has the image head's keys, so it can start from an
    image-head generator's trunk (``load_trunk``).
    """

    def __init__(self, conv_dim: int = 64, c_dim: int = 7, repeat_num: int = 6, head: str = "image",
                 max_shift: float = 0.1, residual_bound: float = 0.2) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown StarGAN generator head {head!r}; choose one of {', '.join(HEADS)}")
        self.conv_dim, self.c_dim, self.repeat_num, self.head_kind = conv_dim, c_dim, repeat_num, head
        self.max_shift, self.residual_bound = max_shift, residual_bound
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
        if head == "image":
            layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        else:
            self.warp = nn.Conv2d(dim, 2 + 3, 7, 1, 3, bias=False)  # flow (x, y), colour residual (RGB)
            nn.init.zeros_(self.warp.weight)  # zero flow, zero residual: G starts as the identity
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Translate images ``x`` (N, 3, H, W) in [-1, 1] to the domains ``c`` (N, c_dim)."""
        return self.translate(x, c)[0]

    def translate(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(translated images, the warp head's colour residual (N, 3, H, W); None for the image head)."""
        c = c.to(x.dtype).view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
        h = self.main(torch.cat([x, c], dim=1))  # RGB first, then the label planes
        if self.head_kind == "image":
            return h, None
        flow, residual = self.flow_and_residual(h)
        return (warp(x, flow) + residual).clamp(-1, 1), residual

    def flow_and_residual(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The warp head on the trunk's features ``h``: flow (N, H, W, 2) and colour residual, each bounded."""
        out = self.warp(h)
        size = out.shape[2:]
        flow = F.interpolate(F.avg_pool2d(out[:, :2], FLOW_POOL), size=size, mode="bilinear", align_corners=False)
        flow = torch.tanh(flow).permute(0, 2, 3, 1) * self.max_shift
        return flow, torch.tanh(out[:, 2:]) * self.residual_bound

    def load_trunk(self, image_state: dict[str, torch.Tensor]) -> None:
        """Start a warp-head G from an image-head G's state dict: every trunk tensor, its RGB layer left out.

        Raises ValueError naming the keys when the state is not an image-head generator of this size.
        """
        if self.head_kind == "image":
            raise ValueError("load_trunk starts a warp head from an image head; this generator has the image head")
        rgb = f"main.{len(self.main)}.weight"  # the image head's RGB convolution, right after the trunk
        expected = set(self.state_dict()) - {"warp.weight"} | {rgb}
        if set(image_state) != expected:
            raise ValueError(f"not an image-head generator's state: it lacks {sorted(expected - set(image_state))} "
                             f"and has {sorted(set(image_state) - expected)} besides")
        self.load_state_dict({k: v for k, v in image_state.items() if k != rgb}, strict=False)  # sizes: RuntimeError


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` (N, C, H, W) at the identity grid shifted by ``flow`` (N, H, W, 2), in [-1, 1] coordinates."""
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(x.size(0), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid + flow.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


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
