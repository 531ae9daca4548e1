"""How a relief is lit: one directional light plus ambient, with a soft specular sheen.

Light directions are in image axes (x right, y down, z towards the camera) and point towards the
light, so ``(0, -0.3, 1)`` lights a face from a little above. The light turns with the head's yaw.
Diffuse light wraps a little past the terminator (skin scatters light under its surface, so its
shadows have soft edges); the specular term is Blinn-Phong, computed by repeated squaring, which
costs four multiplications per pixel instead of a power.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .face import col

WRAP = 0.15  # how far diffuse light reaches past the terminator, as a fraction of a right angle


def gradient(z: Tensor, dim: int) -> Tensor:
    """``np.gradient`` along ``dim``: central differences inside, one-sided at the edges.

    Written out because ``torch.gradient`` fixes the image size when compiled (one compile per size).
    """
    n = z.shape[dim]
    inner = (z.narrow(dim, 2, n - 2) - z.narrow(dim, 0, n - 2)) / 2
    first = z.narrow(dim, 1, 1) - z.narrow(dim, 0, 1)
    last = z.narrow(dim, n - 1, 1) - z.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim)


def direction(light: Tensor, pose: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unit light direction (x, y, z) per face as (N, 1, 1) tensors, turned with the head's yaw."""
    ld = light[:, :3] / torch.linalg.vector_norm(light[:, :3], dim=1, keepdim=True)
    yaw = pose[:, 0]
    lx = ld[:, 0] * torch.cos(yaw) - ld[:, 2] * torch.sin(yaw)
    lz = ld[:, 0] * torch.sin(yaw) + ld[:, 2] * torch.cos(yaw)
    return col(lx), col(ld[:, 1]), col(lz)


def shade(z: Tensor, light: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Wrapped diffuse term and a specular lobe (exponent 16) of a height field in pixels."""
    lx, ly, lz = light
    gy, gx = gradient(z, 1), gradient(z, 2)
    inv = torch.rsqrt(gx * gx + gy * gy + 1)
    ndotl = (-gx * lx - gy * ly + lz) * inv
    diffuse = ((ndotl + WRAP) / (1 + WRAP)).clamp(0, 1)
    hx, hy, hz = lx, ly, lz + 1  # half-way between the light and the camera (0, 0, 1), unnormalised
    ndoth = ((-gx * hx - gy * hy + hz) * inv * torch.rsqrt(hx * hx + hy * hy + hz * hz)).clamp(0, 1)
    spec = ndoth * ndoth
    spec = spec * spec
    spec = spec * spec
    return diffuse, spec * spec
