"""Per-database style: camera framing, lighting, population and nuisance (pose, noise, occluders)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .expressions import expression_aus
from .render import render_faces


@dataclass(frozen=True)
class Style:
    """How one database's camera, studio and subject population look."""

    name: str
    size: tuple[float, float]  # (height, width) as fractions of world.image_size
    color: bool
    scale: float  # face scale in pixels per face unit, as a fraction of the image height
    skin: tuple[float, float] = (0.0, 1.0)
    age: tuple[float, float] = (0.15, 0.8)
    light: tuple[float, float, float] = (0.0, -0.3, 1.0)  # mean direction towards the light
    light_jitter: float = 0.15
    ambient: tuple[float, float] = (0.35, 0.75)  # ambient, diffuse
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour of the light
    background: tuple[float, float, float] = (0.85, 0.85, 0.85)
    background_jitter: float = 0.03
    pose_sd: tuple[float, float, float] = (0.03, 0.03, 0.02)  # yaw, pitch, roll in radians
    shift_sd: float = 0.02  # face centre jitter, fraction of the image side
    scale_sd: float = 0.03
    noise: float = 0.01
    blur: float = 0.0
    occlusion: float = 0.0  # probability of a hand-like occluder
    variability: float = 1.0  # how far a person's AUs stray from the prototype


STYLES: dict[str, Style] = {
    "rafd": Style("rafd", (1.0, 0.75), True, 0.25, skin=(0.0, 0.6), age=(0.05, 0.55),
                  light=(0.0, -0.2, 1.0), light_jitter=0.05, ambient=(0.45, 0.6),
                  background=(0.95, 0.95, 0.95), variability=1.0),
    "oulu": Style("oulu", (0.75, 1.0), True, 0.27, skin=(0.2, 0.6), age=(0.15, 0.45),
                  light=(0.1, -0.3, 1.0), ambient=(0.3, 0.75), background=(0.35, 0.38, 0.45),
                  noise=0.02, variability=1.2),
    "mmi": Style("mmi", (0.8, 1.0), True, 0.27, skin=(0.0, 0.8), age=(0.3, 0.95),
                 light=(-0.8, -0.4, 0.6), light_jitter=0.25, ambient=(0.25, 0.85),
                 tint=(1.1, 0.95, 0.75), background=(0.3, 0.28, 0.3), background_jitter=0.1,
                 pose_sd=(0.08, 0.06, 0.05), shift_sd=0.05, scale_sd=0.08, noise=0.025,
                 blur=0.6, variability=1.6),
    "ckplus": Style("ckplus", (0.77, 1.0), False, 0.26, skin=(0.0, 0.9), age=(0.15, 0.5),
                    light=(0.3, -0.4, 1.0), ambient=(0.3, 0.8), background=(0.6, 0.6, 0.6),
                    noise=0.0, blur=0.5, variability=1.2),
    "affectnet": Style("affectnet", (1.0, 1.0), True, 0.27, skin=(0.0, 0.85), age=(0.05, 0.75),
                       light_jitter=0.35, ambient=(0.35, 0.7), background=(0.5, 0.5, 0.5),
                       background_jitter=0.25, pose_sd=(0.2, 0.1, 0.1), shift_sd=0.07,
                       scale_sd=0.1, noise=0.03, blur=0.4, occlusion=0.2, variability=1.8),
    "ffhq": Style("ffhq", (1.0, 1.0), True, 0.27, skin=(0.0, 0.85), age=(0.05, 0.75),
                  light_jitter=0.25, ambient=(0.4, 0.65), background=(0.5, 0.5, 0.5),
                  background_jitter=0.25, noise=0.0, variability=0.5),
}


def image_shape(style: Style, image_size: int) -> tuple[int, int]:
    """Pixel (height, width) of the style's frames at the world's render size."""
    return int(round(style.size[0] * image_size)), int(round(style.size[1] * image_size))


def nuisance(style: Style, n: int, shape: tuple[int, int], rng: np.random.Generator) -> dict:
    """Draw pose, light, framing, gaze and background for n frames of this style."""
    h, w = shape
    pose = rng.normal(0, 1, (n, 3)) * np.array(style.pose_sd)
    light = np.array(style.light) + rng.normal(0, style.light_jitter, (n, 3))
    light[:, 2] = np.abs(light[:, 2]) + 0.3
    amb = np.array(style.ambient) * rng.uniform(0.9, 1.1, (n, 2))
    frame = np.stack([w / 2 + rng.normal(0, style.shift_sd * w, n),
                      h / 2 + rng.normal(0, style.shift_sd * h, n),
                      style.scale * h * np.exp(rng.normal(0, style.scale_sd, n))], 1)
    bg = np.clip(np.array(style.background) + rng.normal(0, style.background_jitter, (n, 3)), 0, 1)
    return {"pose": pose.astype(np.float32), "light": np.hstack([light, amb]).astype(np.float32),
            "frame": frame.astype(np.float32), "background": bg.astype(np.float32),
            "gaze": np.clip(rng.normal(0, 0.15, (n, 2)), -1, 1).astype(np.float32)}


def render_style(style: Style, ids: dict[str, np.ndarray], labels: list[str], intensity: np.ndarray,
                 image_size: int, rng: np.random.Generator, aus: np.ndarray | None = None,
                 **fixed: np.ndarray) -> np.ndarray:
    """Render frames of a database: expression AUs + style nuisance (``fixed`` overrides) + camera."""
    shape = image_shape(style, image_size)
    nz = {**nuisance(style, len(labels), shape, rng), **fixed}
    if aus is None:
        aus = expression_aus(labels, intensity, ids["au_gain"], rng, style.variability)
    img = render_faces(ids, aus, nz["pose"], nz["light"], shape, color=True, frame=nz["frame"],
                       gaze=nz["gaze"], background=nz["background"])
    return camera(img, style, nz["frame"], rng)


def camera(img: np.ndarray, style: Style, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply light tint, occluders, blur and sensor noise; convert to gray for gray styles."""
    out = img.astype(np.float32) * np.array(style.tint, np.float32)
    for i in np.flatnonzero(rng.random(len(img)) < style.occlusion):
        _occlude(out[i], frame[i], rng)
    if style.blur > 0:
        out = np.stack([cv2.GaussianBlur(x, (0, 0), style.blur) for x in out])
    out = out + rng.normal(0, style.noise * 255, out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if not style.color:
        out = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out


def _occlude(img: np.ndarray, frame: np.ndarray, rng: np.random.Generator) -> None:
    """Paint a hand-like skin blob over the lower or side face (in the wild, AffectNet-like)."""
    cx, cy, s = frame
    centre = (int(cx + rng.uniform(-0.9, 0.9) * s), int(cy + rng.uniform(0.4, 1.2) * s))
    axes = (int(s * rng.uniform(0.3, 0.5)), int(s * rng.uniform(0.2, 0.35)))
    colour = tuple(float(c) for c in rng.uniform(90, 220) * np.array([1.0, 0.8, 0.68]))
    cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
