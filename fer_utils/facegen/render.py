"""Vectorised renderer: a face (``face``: geometry, relief and skin moved by the action units) under a light.

One description of a face, in torch, runs everywhere. On the CPU it is exported and compiled
ahead of time by AOTInductor, which fuses the per-pixel operations (about a thousand) into
vectorised C++ loops: 4-13x the same code eager, per core. The library
is built once per machine into torch's compile cache and loaded by each process in about two
seconds (``torch.compile`` traced for ~13 s in every process). On a GPU it runs eagerly. The
compiled loop is single-threaded, so the world writer's one process per core uses the machine
without oversubscription and may fork after loading it.

Colours are rendered one channel at a time, so that each mask is computed once per pixel, not once
per channel (with an RGB last axis the compiler vectorised over the channels and recomputed every mask).
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

from ..runtime import atomic_path, quiet_worker
from . import expressions, face, identity, lighting
from .expressions import AU_INDEX
from .identity import sample_identities

FACES_PER_CALL = {"cpu": 64, "cuda": 1024}  # CPU: buffers stay in cache (64 was faster than 256)
GRAY = (0.299, 0.587, 0.114)
COLOURS = ("skin", "hair", "lips", "iris", "clothes")  # identity fields that are RGB triples


def _surface(u: Tensor, v: Tensor, f: dict[str, Tensor], gaze: Tensor, eps: Tensor) -> dict[str, Tensor]:
    """Every mask, relief and texture of the face, computed once per pixel (not once per colour channel)."""
    hd, depth, r = face.head(u, v, f, eps)
    m = face.mouth(u, v, f, eps)
    e = face.eyes(u, v, f, gaze, eps)
    hair, strands, hair_z = face.hair(u, v, f, eps, hd)
    ear, concha = face.ears(u, v, f, eps)
    neck, clothes, body_z = face.body(u, v, f, eps)
    relief, groove = face.creases(u, v, f, m)
    grain, blood, under = face.skin_tone(u, v, f)
    au = u.abs()
    sockets = face.bump(au - f["eye_sep"], 0.24) * face.bump(v - f["eye_y"] + 0.02, 0.15) * (1 - e["open"])
    occlusion = (1 - 0.3 * groove - 0.3 * sockets - 0.5 * e["crease"]).clamp(0.3, 1) * (0.7 + 0.3 * depth)
    occlusion = occlusion * (1 - 0.55 * ((1.25 - r) * 4).clamp(0, 1) * neck * (1 - hd))  # under the jaw
    nose_z = face.nose(u, v, f)
    z = face.mix(body_z, face.height(u, v, f, depth, m, e, nose_z) + relief, torch.maximum(hd, ear))
    oily = face.bump(v - f["brow_y"] + 0.3, 0.35) * face.bump(u, 0.55) + face.bump(u, 0.16) * face.bump(v - 0.15, 0.4)
    shine = 0.18 * f["oil"] * (0.5 + oily) * hd * (1 - m["inside"]) + 0.25 * m["lips"] + 0.15 * hair * strands
    return {"head": hd, "hair": hair, "strands": strands, "ear": ear, "concha": concha, "neck": neck,
            "clothes": clothes, "brow": face.brows(u, v, f, eps), "glasses": face.glasses(u, v, f, eps),
            "beard": face.stubble(u, v, f), "nostril": face.nostrils(u, v, f), "grain": grain, "blood": blood,
            "under": under, "occlusion": occlusion, "z": face.mix(z, hair_z, hair), "shine": shine, "nose": nose_z,
            **{f"mouth_{k}": x for k, x in m.items()}, **{f"eye_{k}": x for k, x in e.items()}}


def _albedo(p: dict[str, Tensor], k: dict[str, Tensor], c: int) -> Tensor:
    """One colour channel of the surface: clothes, neck, ears, skin and its features, hair on top."""
    skin = k["skin"] * p["grain"] * (1 + face.RED[c] * p["blood"]) * (1 - face.SHADOWED[c] * p["under"])
    skin = face.mix(skin, k["hair"] * 0.7 + 0.02, 0.45 * p["beard"])
    a = face.mix(skin, k["clothes"], p["clothes"])
    a = face.mix(a, skin * (1 - 0.4 * p["concha"]), p["ear"] * (1 - p["clothes"]))
    lips = k["lips"] * (1 - 0.35 * p["mouth_seam"])
    inside = 0.03 + 0.10 * (1 - p["mouth_depth"]) * (0.6 + 0.4 * face.RED[c] / 0.12)
    inside = face.mix(inside, k["lips"] * 0.55, p["mouth_tongue"])
    inside = face.mix(inside, face.TEETH[c], p["mouth_teeth"])
    sclera = face.SCLERA[c] * (1 - 0.55 * p["eye_lid_shadow"]) * (0.75 + 0.25 * p["eye_ball"])
    iris = k["iris"] * (1 - 0.6 * p["eye_limbus"])
    f = skin * (1 - 0.75 * p["nostril"])
    f = face.mix(f, lips, p["mouth_lips"])
    f = face.mix(f, inside, p["mouth_inside"])
    f = face.mix(f, sclera, p["eye_open"])
    f = face.mix(f, iris, p["eye_iris"])
    f = face.mix(f, 0.02, torch.maximum(p["eye_pupil"], p["eye_lash"]))
    f = face.mix(f, (k["hair"] * 0.55).clamp(max=0.15), p["brow"])  # brows stay dark when hair greys
    f = face.mix(f, 0.08, p["glasses"])
    a = face.mix(a, f, p["head"])
    return face.mix(a, k["hair"] * p["strands"], p["hair"])


def _render(ids: dict[str, Tensor], colours: dict[str, Tensor], aus: Tensor, pose: Tensor, light: Tensor,
            frame: Tensor, gaze: Tensor, background: Tensor, h: int, w: int) -> Tensor:
    """Gamma-encoded RGB in [0, 1], (N, H, W, 3): the function the compiler fuses."""
    u, v, s = face.face_coords(h, w, pose, frame)
    f = face.features(ids, aus)
    p = _surface(u, v, f, gaze, 1.5 / s)
    towards = lighting.direction(light, pose)
    diffuse, spec = lighting.shade(p["z"] * s, towards)  # relief in pixels
    ambient, strength = face.col(light[:, 3]), face.col(light[:, 4])
    lit = ambient * p["occlusion"] + strength * diffuse * face.nose_shadow(u, v, f, towards, p["nose"])
    glint = strength * (p["shine"] * spec + 0.9 * p["eye_open"] * (spec * spec) ** 2)  # wet eyes: a sharp highlight
    mask = torch.maximum(torch.maximum(p["head"], p["hair"]), torch.maximum(torch.maximum(p["ear"], p["neck"]),
                                                                            p["clothes"]))
    ramp = 1 - 0.25 * torch.arange(h, dtype=torch.float32, device=u.device).view(1, h, 1) / max(h - 1, 1)
    rgb = []
    for c in range(3):
        k = {name: face.col(x[:, c]) for name, x in colours.items()}
        rgb.append(face.mix(face.col(background[:, c]) * ramp, _albedo(p, k, c) * lit + glint, mask))
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
    for module in (__file__, face.__file__, lighting.__file__, expressions.__file__, identity.__file__):
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
    ids = {k: face.col(tensor(identities[k])) for k in sorted(identities) if identities[k].ndim == 1}
    colours = {k: tensor(identities[k]) for k in COLOURS}
    return ids, colours, *map(tensor, per_face), torch.empty(size, device=device)


def single_threaded() -> None:
    """Pool initializer for forked render workers: torch ops stay on the worker's own thread.

    A forked child that enters the OpenMP pool its parent already started hangs (libgomp is not
    fork-safe); one thread per worker process is also what the writer wants. Ctrl-C and SIGTERM are left to the
    parent, which ends the pool (``runtime.quiet_worker``).
    """
    quiet_worker()
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
