"""Vectorised renderer: a 2.5D face height field, deformed by action units, lit over an albedo.

One description of a face, in torch, runs everywhere. On the CPU it is exported and compiled
ahead of time by AOTInductor, which fuses the few hundred per-pixel operations into one vectorised
C++ loop: about 4x the same code eager, or the numpy renderer it replaced, per core. The library
is built once per machine into torch's compile cache and loaded by each process in about two
seconds (``torch.compile`` traced for ~13 s in every process). On a GPU it runs eagerly. The
compiled loop is single-threaded, so the world writer's one process per core uses the machine
without oversubscription and may fork after loading it.

Face units: head half-width 1, ``v`` grows downwards, origin at the head centre. Every per-face
quantity has shape (N, 1, 1) so that it broadcasts over the (N, H, W) pixel grid; colours are
rendered one channel at a time so that each mask is computed once per pixel, not once per channel.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch._inductor.runtime.cache_dir_utils import cache_dir

from ..runtime import atomic_path
from . import expressions
from .expressions import AU_INDEX
from .identity import sample_identities

FACES_PER_CALL = {"cpu": 64, "cuda": 1024}  # CPU: buffers stay in cache (64 was faster than 256)
GRAY = (0.299, 0.587, 0.114)
COLOURS = ("skin", "hair", "lips", "iris")  # identity fields that are RGB triples


def _soft(d: Tensor, eps: float | Tensor) -> Tensor:
    """Soft inside-mask of a signed distance (negative inside), edge width ``eps``."""
    return (0.5 - d / eps).clamp(0.0, 1.0)


def _gauss(x: Tensor, s: float | Tensor) -> Tensor:
    """Unnormalised Gaussian bump."""
    return torch.exp(-(x * x) / (2 * s * s))


def _col(x: Tensor) -> Tensor:
    """Reshape (N,) to (N, 1, 1) for broadcasting over pixels."""
    return x.view(-1, 1, 1)


def _features(ids: dict[str, Tensor], aus: Tensor) -> dict[str, Tensor]:
    """Turn identity + AU intensities into the moving feature geometry (face units)."""
    a = {au: _col(aus[:, i]) for au, i in AU_INDEX.items()}
    f = dict(ids)
    f["brow_in"] = f["brow_y"] - 0.12 * a[1] + 0.13 * a[4] + 0.05 * a[9]
    f["brow_out"] = f["brow_y"] - 0.10 * a[2] + 0.02 * a[4] + 0.02 * a[9]
    f["brow_pinch"] = 0.05 * a[4]
    f["eye_open"] = f["eye_h"] * (1 + 0.7 * a[5] - 0.45 * a[7] - 0.35 * a[6] - 0.2 * a[9]).clamp(0.2, 2)
    f["cheek_up"] = 0.06 * a[6] + 0.03 * a[12]
    f["mouth_hw"] = f["mouth_w"] * (1 + 0.22 * a[12] + 0.25 * a[20] - 0.18 * a[23] - 0.08 * a[26] + 0.06 * a[14])
    f["corner_r"] = -0.14 * a[12] + 0.10 * a[15] + 0.02 * a[20] - 0.02 * a[6]
    f["corner_l"] = f["corner_r"] - 0.07 * a[14]
    f["mouth_open"] = 0.26 * a[26] + 0.09 * a[16] + 0.05 * a[12] * a[6] + 0.03 * a[20]
    f["mouth_c"] = f["mouth_y"] - 0.07 * a[9] + 0.10 * a[26]
    f["lip_up"] = f["lip_up"] * (1 - 0.6 * a[23])
    f["lip_lo"] = f["lip_lo"] * (1 - 0.5 * a[23]) + 0.02 * a[16]
    f["chin"] = f["head_h"] + 0.10 * a[26]
    f["wrinkle_nose"] = a[9]
    f["frown"] = a[4]
    f["fold"] = (0.7 * a[12] + 0.6 * a[9] + 0.3 * a[6] + 0.1 * f["age"]).clamp(0, 1)
    f["smile"] = a[12]
    return f


def _face_coords(h: int, w: int, pose: Tensor, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Map pixels to face units through frame (cx, cy, scale px/unit) and pose (yaw, pitch, roll)."""
    ys = torch.arange(h, dtype=torch.float32, device=pose.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=pose.device).view(1, 1, w)
    cx, cy, s = _col(frame[:, 0]), _col(frame[:, 1]), _col(frame[:, 2])
    yaw, pitch, roll = _col(pose[:, 0]), _col(pose[:, 1]), _col(pose[:, 2])
    x, y = (xs - cx) / s, (ys - cy) / s
    u = x * torch.cos(roll) + y * torch.sin(roll)
    v = -x * torch.sin(roll) + y * torch.cos(roll)
    # Rotating a round head shifts its central features by sin(angle) and keeps the outline.
    bulge = (1 - u * u / 1.1).clamp(0, 1) * (1 - v * v / 2.0).clamp(0, 1)
    u = (u - 0.75 * torch.sin(yaw) * bulge) / (0.55 + 0.45 * torch.cos(yaw))
    v = (v - 0.6 * torch.sin(pitch) * bulge) / (0.6 + 0.4 * torch.cos(pitch))
    return u, v, s


def _head_mask(u: Tensor, v: Tensor, f: dict[str, Tensor], eps: Tensor) -> tuple[Tensor, Tensor]:
    """Head outline (forehead ellipse narrowing into a jaw) and its ellipsoid depth."""
    vn = (v / f["chin"]).clamp(0, 1)
    half_w = f["head_w"] * (1 - f["jaw"] * vn ** 2)
    vb = torch.where(v > 0, f["chin"], f["head_h"] * 0.95)
    r2 = (u / half_w) ** 2 + (v / vb) ** 2
    return _soft(torch.sqrt(r2) - 1, eps), torch.sqrt((1 - r2).clamp(0, 1))


def _mouth(u: Tensor, v: Tensor, f: dict[str, Tensor], eps: Tensor) -> tuple[Tensor, Tensor]:
    """Lip and open-mouth masks from the mouth centre line (corners move with AU12/15/14)."""
    t = u / f["mouth_hw"]
    env = (1 - t * t).clamp(0, 1)
    corner = torch.where(u < 0, f["corner_l"], f["corner_r"])
    centre = f["mouth_c"] + corner * t * t
    half_open = 0.5 * f["mouth_open"] * env
    rs = torch.sqrt(env)
    top, bot = centre - half_open - f["lip_up"] * rs, centre + half_open + f["lip_lo"] * rs
    inside = _soft((v - centre).abs() - half_open, eps) * (env > 0)
    lips = _soft(torch.maximum(top - v, v - bot), eps) * _soft(t.abs() - 1, eps * 3)
    return lips, inside


def _eyes(u: Tensor, v: Tensor, f: dict[str, Tensor], gaze: Tensor, eps: Tensor) -> tuple[Tensor, ...]:
    """Eye openings, iris+pupil masks, lash line and socket shadow (both eyes, mirrored in u)."""
    du, dv = (u.abs() - f["eye_sep"]) / f["eye_w"], (v - f["eye_y"])
    lower = f["eye_open"] * 0.55 + 0.45 * f["eye_h"] * 0.5
    r = torch.sqrt(du * du + (dv / torch.where(dv < 0, f["eye_open"], lower)) ** 2)
    eye = _soft(r - 1, eps * 4)
    gx, gy = _col(gaze[:, 0]), _col(gaze[:, 1])
    iu = (u - torch.sign(u) * f["eye_sep"] - gx * f["eye_w"] * 0.35) / f["eye_w"]
    ir = torch.sqrt(iu ** 2 + ((v - f["eye_y"] - gy * 0.02) / (f["eye_w"] * 1.0)) ** 2)
    iris, pupil = _soft(ir - 0.56, 0.12) * eye, _soft(ir - 0.2, 0.08) * eye
    lash = _soft((r - 1.08).abs() - 0.16, 0.1) * (dv < 0.01)
    socket = _gauss(du * 0.7, 1.0) * _gauss(dv + 0.03, 0.12)
    return eye, iris, pupil, lash, socket


def _brows(u: Tensor, v: Tensor, f: dict[str, Tensor], eps: Tensor) -> Tensor:
    """Brow mask: inner end moves with AU1/AU4, outer end with AU2, pinched inwards by AU4."""
    inner = 0.08 - f["brow_pinch"] + 0.02
    outer = f["eye_sep"] + f["eye_w"] * 1.25
    t = (u.abs() - inner) / (outer - inner)
    tc = t.clamp(0, 1)
    line = f["brow_in"] * (1 - tc) + f["brow_out"] * tc - f["brow_arch"] * 4 * tc * (1 - tc)
    thick = f["brow_thick"] * (1.1 - 0.5 * tc)
    return _soft((v - line).abs() - thick, eps * 2) * _soft((t - 0.5).abs() - 0.5, 0.08)


def _height(u: Tensor, v: Tensor, f: dict[str, Tensor], head_depth: Tensor, inside: Tensor) -> Tensor:
    """Height field: ellipsoid + brow ridge + nose + cheeks + lips + chin − sockets − mouth."""
    au = u.abs()
    z = 0.9 * head_depth
    z = z + 0.06 * _gauss(v - f["brow_y"] - 0.06, 0.05) * _gauss(au - 0.3, 0.22)
    tn = ((v - f["eye_y"] + 0.05) / (f["nose_len"] + 0.1)).clamp(0, 1)
    nose_top = f["eye_y"] + f["nose_len"] + 0.12
    z = z + f["nose_h"] * tn * _gauss(u, f["nose_w"] * (0.35 + 0.65 * tn)) * _soft(v - nose_top, 0.06)
    z = z + 0.08 * _gauss(au - 0.42, 0.14) * _gauss(v - 0.28 + f["cheek_up"], 0.13) * (1 + 0.8 * f["cheek_up"] / 0.09)
    z = z + 0.05 * _gauss(u, 0.2) * _gauss(v - f["mouth_c"], 0.08)
    z = z + 0.04 * _gauss(u, 0.2) * _gauss(v - f["chin"] + 0.12, 0.08)
    z = z - 0.10 * _gauss(au - f["eye_sep"], 0.13) * _gauss(v - f["eye_y"] + 0.03, 0.08)
    fold_band = (v > 0.3) & (v < f["mouth_c"] + 0.1)
    z = z - 0.04 * f["fold"] * _gauss(au - 0.2 - 0.6 * (v - 0.3).clamp(0, 0.4), 0.025) * fold_band
    return z - 0.10 * inside


def _skin_shade(u: Tensor, v: Tensor, f: dict[str, Tensor]) -> Tensor:
    """Skin shading factor: bright cheeks, texture, age wrinkles, frown and nose-wrinkle lines, stubble."""
    au = u.abs()
    tex = 1 + 0.025 * torch.sin(23 * u + f["texture_phase"]) * torch.sin(19 * v - f["texture_phase"])
    lines = f["age"] ** 2 * 0.10 * (torch.sin(v * 90) > 0.6) * _gauss(v + 0.6, 0.1) * (au < 0.5)
    lines = lines + 0.35 * f["frown"] * _gauss(au - 0.05, 0.012) * _gauss(v - f["brow_y"] - 0.02, 0.07)
    ridges = torch.sin(v * 110) > 0.3
    lines = lines + 0.35 * f["wrinkle_nose"] * ridges * _gauss(u, 0.07) * _gauss(v - f["eye_y"] - 0.02, 0.05)
    shade = tex * (1 - lines) * (1 + 0.10 * _gauss(au - 0.45, 0.14) * _gauss(v - 0.3, 0.12))
    stubble = f["beard"] * 0.25 * _soft(0.45 - v, 0.1) * _soft(au - 0.75, 0.1)
    return shade * (1 - stubble)


def _glasses(u: Tensor, v: Tensor, f: dict[str, Tensor], eps: Tensor) -> Tensor:
    """Thin dark frames around both eyes and a bridge, for people with the glasses flag."""
    r = torch.sqrt(((u.abs() - f["eye_sep"]) / (f["eye_w"] * 1.45)) ** 2 + ((v - f["eye_y"]) / 0.13) ** 2)
    bridge = _soft((v - f["eye_y"] + 0.03).abs() - 0.012, eps) * (u.abs() < f["eye_sep"] - f["eye_w"] * 1.3)
    return torch.maximum(_soft((r - 1).abs() - 0.05, 0.08), bridge) * f["glasses"]


def _hair_mask(u: Tensor, v: Tensor, f: dict[str, Tensor], eps: Tensor) -> Tensor:
    """Hair: above a wavy hairline inside a slightly larger skull, plus side hair down to hair_len."""
    skull = _soft(torch.sqrt((u / (f["head_w"] * 1.08)) ** 2 + ((v + 0.08) / (f["head_h"] * 1.05)) ** 2) - 1, eps)
    line = f["hairline"] + 0.05 * torch.cos(u * 5) + 0.25 * (u.abs() > 0.75)
    top = _soft(v - line, eps * 2) * skull
    outer = _soft(torch.sqrt((u / (f["head_w"] * 1.14)) ** 2 + ((v + 0.1) / (f["head_h"] * 1.2)) ** 2) - 1, eps)
    side = outer * _soft(0.8 * f["head_w"] - u.abs(), eps * 3) * _soft(v - f["hair_len"] + 0.2, 0.15)
    return torch.maximum(top, side * (f["hair_len"] > 0.3))


def _mix(base: Tensor, top: Tensor | float, alpha: Tensor) -> Tensor:
    """Alpha-blend ``top`` over ``base`` (one colour channel) with an (N, H, W) mask."""
    return base + (top - base) * alpha


def _compose_albedo(u: Tensor, v: Tensor, f: dict[str, Tensor], colours: dict[str, Tensor], gaze: Tensor,
                    eps: Tensor) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
    """Paint skin, hair, brows, eyes, lips, mouth; return albedo channels, face mask, mouth interior, depth."""
    head, depth = _head_mask(u, v, f, eps)
    lips, inside = _mouth(u, v, f, eps)
    eye, iris, pupil, lash, socket = _eyes(u, v, f, gaze, eps)
    brow = _brows(u, v, f, eps)
    skin = _skin_shade(u, v, f)
    nostril = _soft(torch.sqrt(((u.abs() - f["nose_w"] * 0.7) / 0.04) ** 2
                               + ((v - f["eye_y"] - f["nose_len"] - 0.1) / 0.02) ** 2) - 1, 0.5)
    teeth = 0.05 + _soft(u.abs() - f["mouth_hw"] * 0.6, 0.05) * f["smile"] * 0.7
    dark = torch.maximum(pupil, lash)
    glasses = _glasses(u, v, f, eps)
    hair = _hair_mask(u, v, f, eps)
    sheen = 1 + 0.08 * torch.sin(60 * u + 8 * v)
    channels = []
    for c in range(3):
        k = {name: _col(rgb[:, c]) for name, rgb in colours.items()}
        a = k["skin"] * skin * (1 - 0.5 * socket) * (1 - 0.6 * nostril)
        a = _mix(a, k["lips"], lips)
        a = _mix(a, teeth, inside)
        a = _mix(a, 0.72, eye)
        a = _mix(a, k["iris"], iris)
        a = _mix(a, 0.03, dark)
        a = _mix(a, (k["hair"] * 0.6).clamp(max=0.15), brow)  # brows stay dark when hair greys
        a = _mix(a, 0.08, glasses)
        channels.append(_mix(a, k["hair"] * sheen, hair))
    return channels, torch.maximum(head, hair), inside, depth


def _gradient(z: Tensor, dim: int) -> Tensor:
    """``np.gradient`` along ``dim``: central differences inside, one-sided at the edges.

    Written out because ``torch.gradient`` fixes the image size when compiled (one compile per size).
    """
    n = z.shape[dim]
    inner = (z.narrow(dim, 2, n - 2) - z.narrow(dim, 0, n - 2)) / 2
    first = z.narrow(dim, 1, 1) - z.narrow(dim, 0, 1)
    last = z.narrow(dim, n - 1, 1) - z.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim)


def _lambert(z: Tensor, pose: Tensor, light: Tensor) -> Tensor:
    """Ambient + Lambertian shading of the height field; the light is turned with the head."""
    gy, gx = _gradient(z, 1), _gradient(z, 2)
    norm = torch.sqrt(gx * gx + gy * gy + 1)
    ld = light[:, :3] / torch.linalg.vector_norm(light[:, :3], dim=1, keepdim=True)
    yaw = pose[:, 0]
    lx = ld[:, 0] * torch.cos(yaw) - ld[:, 2] * torch.sin(yaw)
    lz = ld[:, 0] * torch.sin(yaw) + ld[:, 2] * torch.cos(yaw)
    ndotl = (-gx * _col(lx) - gy * _col(-ld[:, 1]) + _col(lz)) / norm
    return _col(light[:, 3]) + _col(light[:, 4]) * ndotl.clamp(0, 1)


def _render(ids: dict[str, Tensor], colours: dict[str, Tensor], aus: Tensor, pose: Tensor, light: Tensor,
            frame: Tensor, gaze: Tensor, background: Tensor, h: int, w: int) -> Tensor:
    """Gamma-encoded RGB in [0, 1], (N, H, W, 3): the function ``torch.compile`` fuses."""
    u, v, s = _face_coords(h, w, pose, frame)
    f = _features(ids, aus)
    eps = 1.5 / s
    ramp = 1 - 0.25 * torch.arange(h, dtype=torch.float32, device=u.device).view(1, h, 1) / max(h - 1, 1)
    albedo, mask, inside, depth = _compose_albedo(u, v, f, colours, gaze, eps)
    shade = _lambert(_height(u, v, f, depth, inside) * s, pose, light)  # height in pixels
    rgb = [_mix(_col(background[:, c]) * ramp, albedo[c] * shade, mask) for c in range(3)]
    return torch.stack([x.clamp(0, 1) ** (1 / 2.2) for x in rgb], -1)


class _Renderer(torch.nn.Module):
    """``_render`` with the frame size read from a tensor's shape, so that export keeps it symbolic."""

    def forward(self, ids: dict[str, Tensor], colours: dict[str, Tensor], aus: Tensor, pose: Tensor, light: Tensor,
                frame: Tensor, gaze: Tensor, background: Tensor, canvas: Tensor) -> Tensor:
        return _render(ids, colours, aus, pose, light, frame, gaze, background, *canvas.shape)


_EAGER = _Renderer()


def _package_path() -> Path:
    """Where this machine keeps the compiled renderer: torch's compile cache, keyed by the code it was built from."""
    # a package holds machine code for the CPU it was built on: never load it on another kind of CPU
    key = hashlib.sha256(f"{torch.__version__} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}".encode())
    for module in (__file__, expressions.__file__):  # the render code and the action units it reads
        key.update(Path(module).read_bytes())
    return Path(cache_dir()) / f"fer_utils_render_{key.hexdigest()[:16]}.pt2"


def _build_package(path: Path, args: tuple) -> None:
    """Export ``_render`` for any batch (>= 2) and frame size (>= 4 px) and compile it; written atomically."""
    minima = (("faces", 2), ("height", 4), ("width", 4))
    faces, height, width = (torch.export.Dim(name, min=low) for name, low in minima)
    ids, colours = ({k: {0: faces} for k in group} for group in args[:2])
    shapes = (ids, colours, *[{0: faces}] * 6, {0: height, 1: width})
    program = torch.export.export(_Renderer(), args, dynamic_shapes=shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.pt2")  # one per builder
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp), inductor_configs={"cpp.threads": 1})
        _check_build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed build leaves nothing behind


# run in a child: load the package and draw the example faces with it (sys.argv: package, folder holding fer_utils)
_CHILD_CHECK = ("import sys; sys.path.insert(0, sys.argv[2]); import torch; from fer_utils.facegen import render; "
                "render._draws_like_eager(torch._inductor.aoti_load_package(sys.argv[1]))")
_STOPPED = {signal.SIGINT, signal.SIGTERM, signal.SIGKILL}  # stopped from outside: no verdict on the build


def _check_build(package: Path) -> None:
    """Load and run a new build in a child process first: where AOTInductor's loader crashes the process
    (a segfault, seen with torch 2.11+cu130 on an H100 machine), it kills the child, not the caller."""
    child = subprocess.run([sys.executable, "-c", _CHILD_CHECK, str(package), str(Path(__file__).resolve().parents[2])],
                           capture_output=True, text=True, timeout=600)
    if -child.returncode in _STOPPED:
        raise InterruptedError(f"the process checking the build was stopped by signal {-child.returncode}")
    if child.returncode:
        how = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit status {child.returncode}"
        last = (child.stderr.strip().splitlines() or [""])[-1]
        raise RuntimeError(f"a process loading and running the build was {how} {last}".rstrip())


def _draws_like_eager(package: Callable[..., Tensor]) -> None:
    """Refuse a build whose example faces differ from the eager renderer's by more than rounding."""
    args = _example_inputs()
    with torch.no_grad():
        diff = (package(*args) - _EAGER(*args)).abs().max().item()
    if not diff <= 1e-3:  # NaN fails too
        raise RuntimeError("the build draws the example faces differently from the eager renderer "
                           f"(max difference {diff:.3g})")


@functools.cache
def _compiled() -> Callable[..., Tensor] | None:
    """The CPU renderer compiled ahead of time by AOTInductor (one fused, single-threaded C++ loop).

    Built once per machine and code version (~50 s), then loaded by every process in ~2 s. None,
    after a warning, where it cannot be built or loaded (no working C++ compiler, a loader that
    crashes): the CPU then renders eagerly, and a ``.failed`` note beside the package stops later
    processes from trying again until it is deleted.
    """
    path = failed = None
    try:
        path = _package_path()
        failed = path.with_suffix(".failed")
        if not path.is_file():
            if failed.is_file():
                raise RuntimeError(f"an earlier attempt failed ({failed.read_text().strip()}); "
                                   f"delete {failed} to retry")
            _build_package(path, _example_inputs())
        return torch._inductor.aoti_load_package(str(path))
    except Exception as err:  # any failure to build the optimisation leaves the eager renderer, which is correct
        why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if failed is not None and not isinstance(err, OSError):  # a full disk or a stopped build may not recur
            with contextlib.suppress(OSError):  # an unwritable cache only means the next process tries again
                if not failed.is_file():
                    with atomic_path(failed) as tmp:
                        tmp.write_text(why + "\n")
        where = f" {path}" if path else ""  # None when even the cache folder could not be found
        warnings.warn(f"could not build or load the compiled face renderer{where}, rendering eagerly (~4x slower): "
                      f"{why}", stacklevel=4)
        return None


def _renderer(device: torch.device, compiled: bool) -> Callable[..., Tensor]:
    """The compiled renderer on the CPU, eager elsewhere (or where it could not be compiled)."""
    fast = _compiled() if compiled and device.type == "cpu" else None
    return fast or _EAGER


def _check_inputs(n: int, size: tuple[int, int], **arrays: np.ndarray) -> None:
    """Refuse per-face arrays whose rows or columns do not match, naming the argument."""
    columns = {"aus": len(AU_INDEX), "pose": 3, "light": 5, "frame": 3, "gaze": 2, "background": 3}
    for name, a in arrays.items():
        if np.shape(a) != (n, columns[name]):
            raise ValueError(f"render_faces: {name} has shape {np.shape(a)}, expected ({n}, {columns[name]})")
    if len(size) != 2 or min(size) < 4:
        raise ValueError(f"render_faces: size {size} must be (height, width), each at least 4 pixels")


def render_faces(identities: dict[str, np.ndarray], aus: np.ndarray, pose: np.ndarray,
                 light: np.ndarray, size: tuple[int, int], color: bool = True,
                 frame: np.ndarray | None = None, gaze: np.ndarray | None = None,
                 background: np.ndarray | None = None, device: str | torch.device = "cpu",
                 compiled: bool = True) -> np.ndarray:
    """Render N shaded faces, vectorised over faces and pixels; returns uint8 (N, H, W, 3) or (N, H, W).

    Args:
        identities: table from ``sample_identities`` (N rows).
        aus: (N, len(AUS)) action-unit intensities in [0, 1].
        pose: (N, 3) yaw, pitch, roll in radians.
        light: (N, 5) light direction x, y, z (towards the light, z to the camera), ambient, diffuse.
        size: (height, width) in pixels.
        color: RGB if true, else luminance.
        frame: (N, 3) face centre x, y and scale (pixels per face unit); default centred.
        gaze: (N, 2) gaze offset in [-1, 1]; default straight.
        background: (N, 3) background RGB in [0, 1]; default mid gray.
        device: where to render; the world writer keeps the CPU so its bytes do not depend on a GPU.
        compiled: False renders eagerly on the CPU too (the benchmark's baseline, the tests' reference).
    """
    n, (h, w) = len(aus), size
    frame = np.tile([w / 2, h / 2, min(h, w) * 0.33], (n, 1)) if frame is None else frame
    gaze = np.zeros((n, 2)) if gaze is None else gaze
    background = np.full((n, 3), 0.5) if background is None else background
    _check_inputs(n, size, aus=aus, pose=pose, light=light, frame=frame, gaze=gaze, background=background)
    identities = {k: np.asarray(v) for k, v in identities.items()}
    per_face = [np.asarray(a) for a in (aus, pose, light, frame, gaze, background)]
    out = np.empty((n, h, w, 3) if color else (n, h, w), np.uint8)
    render = _renderer(torch.device(device), compiled)
    per_call = FACES_PER_CALL.get(torch.device(device).type, 64)
    for i in range(0, n, per_call):
        # Rows are gathered (contiguous copies); a lone face is drawn twice: the compiled renderer takes 2 or more.
        rows = np.minimum(np.arange(i, max(i + 2, min(i + per_call, n))), n - 1)
        batch = _tensors({k: v[rows] for k, v in identities.items()}, [a[rows] for a in per_face], (h, w), device)
        with torch.no_grad():
            rgb = render(*batch)[:min(per_call, n - i)]
            img = rgb if color else rgb @ torch.tensor(GRAY, device=rgb.device)
            out[i:i + per_call] = (img * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return out


def _tensors(identities: dict[str, np.ndarray], per_face: list[np.ndarray], size: tuple[int, int],
             device: str | torch.device) -> tuple:
    """The renderer's inputs: identity scalars as (N, 1, 1), colours (N, 3), per-face rows, a canvas of the frame
    size."""
    def tensor(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=device)
    # in a fixed order: the compiled package takes the fields by position, whatever order the caller's dict has
    ids = {k: _col(tensor(identities[k])) for k in sorted(identities) if identities[k].ndim == 1}
    colours = {k: tensor(identities[k]) for k in COLOURS}
    return ids, colours, *map(tensor, per_face), torch.empty(size, device=device)


def single_threaded() -> None:
    """Pool initializer for forked render workers: torch ops stay on the worker's own thread.

    A forked child that enters the OpenMP pool its parent already started hangs (libgomp is not
    fork-safe); one thread per worker process is also what the writer wants.
    """
    torch.set_num_threads(1)


def _example_inputs() -> tuple:
    """Inputs to export the renderer with: sizes unlike one another, so that none is tied to another."""
    n = 7
    identities = sample_identities(0, range(n))
    per_face = [np.zeros((n, len(AU_INDEX))), np.zeros((n, 3)), np.tile([0, 0, 1, 0.5, 0.5], (n, 1)),
                np.tile([12, 8, 5], (n, 1)), np.zeros((n, 2)), np.full((n, 3), 0.5)]
    return _tensors(identities, per_face, (16, 24), "cpu")


def compile_renderer() -> None:
    """Build or load the compiled CPU renderer now (~50 s the first time on a machine, then ~2 s).

    Call before forking workers, so that they share one compiled renderer instead of each loading it.
    """
    _renderer(torch.device("cpu"), compiled=True)  # as render_faces gets it: its warning names our caller
