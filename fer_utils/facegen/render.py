"""Vectorised renderer: a 2.5D face height field, deformed by action units, lit over an albedo.

Face units: head half-width 1, ``v`` grows downwards, origin at the head centre. Every per-face
quantity has shape (N, 1, 1) so that it broadcasts over the (N, H, W) pixel grid.
"""
from __future__ import annotations

import numpy as np

from .expressions import AU_INDEX

F32 = np.float32
CACHE_PIXELS = 16384  # pixels rendered per pass (one 128x128 face)


def _soft(d: np.ndarray, eps: float) -> np.ndarray:
    """Soft inside-mask of a signed distance (negative inside), edge width ``eps``."""
    return np.clip(0.5 - d / eps, 0.0, 1.0)


def _gauss(x: np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """Unnormalised Gaussian bump."""
    return np.exp(-(x * x) / (2 * s * s))


def _col(a: np.ndarray) -> np.ndarray:
    """Reshape (N,) to (N, 1, 1) for broadcasting over pixels."""
    return np.asarray(a, F32).reshape(-1, 1, 1)


def _features(ids: dict[str, np.ndarray], aus: np.ndarray) -> dict[str, np.ndarray]:
    """Turn identity + AU intensities into the moving feature geometry (face units)."""
    a = {au: _col(aus[:, i]) for au, i in AU_INDEX.items()}
    f = {k: _col(v) for k, v in ids.items() if np.ndim(v) == 1}
    f["brow_in"] = f["brow_y"] - 0.12 * a[1] + 0.13 * a[4] + 0.05 * a[9]
    f["brow_out"] = f["brow_y"] - 0.10 * a[2] + 0.02 * a[4] + 0.02 * a[9]
    f["brow_pinch"] = 0.05 * a[4]
    f["eye_open"] = f["eye_h"] * np.clip(1 + 0.7 * a[5] - 0.45 * a[7] - 0.35 * a[6] - 0.2 * a[9], 0.2, 2)
    f["cheek_up"] = 0.06 * a[6] + 0.03 * a[12]
    w = f["mouth_w"] * (1 + 0.22 * a[12] + 0.25 * a[20] - 0.18 * a[23] - 0.08 * a[26] + 0.06 * a[14])
    f["mouth_hw"] = w
    f["corner_r"] = -0.14 * a[12] + 0.10 * a[15] + 0.02 * a[20] - 0.02 * a[6]
    f["corner_l"] = f["corner_r"] - 0.07 * a[14]
    f["mouth_open"] = 0.26 * a[26] + 0.09 * a[16] + 0.05 * a[12] * a[6] + 0.03 * a[20]
    f["mouth_c"] = f["mouth_y"] - 0.07 * a[9] + 0.10 * a[26]
    f["lip_up"] = f["lip_up"] * (1 - 0.6 * a[23])
    f["lip_lo"] = f["lip_lo"] * (1 - 0.5 * a[23]) + 0.02 * a[16]
    f["chin"] = f["head_h"] + 0.10 * a[26]
    f["wrinkle_nose"] = a[9]
    f["frown"] = a[4]
    f["fold"] = np.clip(0.7 * a[12] + 0.6 * a[9] + 0.3 * a[6] + 0.1 * f["age"], 0, 1)
    f["smile"] = a[12]
    return f


def _face_coords(h: int, w: int, pose: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map pixels to face units through frame (cx, cy, scale px/unit) and pose (yaw, pitch, roll)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(F32)
    cx, cy, s = _col(frame[:, 0]), _col(frame[:, 1]), _col(frame[:, 2])
    yaw, pitch, roll = _col(pose[:, 0]), _col(pose[:, 1]), _col(pose[:, 2])
    x, y = (xs - cx) / s, (ys - cy) / s
    u = x * np.cos(roll) + y * np.sin(roll)
    v = -x * np.sin(roll) + y * np.cos(roll)
    # Rotating a round head shifts its central features by sin(angle) and keeps the outline.
    bulge = np.clip(1 - u * u / 1.1, 0, 1) * np.clip(1 - v * v / 2.0, 0, 1)
    u = (u - 0.75 * np.sin(yaw) * bulge) / (0.55 + 0.45 * np.cos(yaw))
    v = (v - 0.6 * np.sin(pitch) * bulge) / (0.6 + 0.4 * np.cos(pitch))
    return u.astype(F32), v.astype(F32), s


def _head_mask(u: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray], eps: float) -> tuple:
    """Head outline (forehead ellipse narrowing into a jaw) and its ellipsoid depth."""
    vn = np.clip(v / f["chin"], 0, 1)
    half_w = f["head_w"] * (1 - f["jaw"] * vn ** 2)
    vb = np.where(v > 0, f["chin"], f["head_h"] * 0.95)
    r2 = (u / half_w) ** 2 + (v / vb) ** 2
    return _soft(np.sqrt(r2) - 1, eps), np.sqrt(np.clip(1 - r2, 0, 1))


def _mouth(u: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray], eps: float) -> tuple:
    """Lip and open-mouth masks from the mouth centre line (corners move with AU12/15/14)."""
    t = u / f["mouth_hw"]
    env = np.clip(1 - t * t, 0, 1)
    corner = np.where(u < 0, f["corner_l"], f["corner_r"])
    centre = f["mouth_c"] + corner * t * t
    half_open = 0.5 * f["mouth_open"] * env
    rs = np.sqrt(env)
    top, bot = centre - half_open - f["lip_up"] * rs, centre + half_open + f["lip_lo"] * rs
    inside = _soft(np.abs(v - centre) - half_open, eps) * (env > 0)
    lips = _soft(np.maximum(top - v, v - bot), eps) * _soft(np.abs(t) - 1, eps * 3)
    return lips, inside


def _eyes(u: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray], gaze: np.ndarray, eps: float):
    """Eye openings, iris+pupil masks, lash line and socket shadow (both eyes, mirrored in u)."""
    au = np.abs(u)
    du, dv = (au - f["eye_sep"]) / f["eye_w"], (v - f["eye_y"])
    lower = f["eye_open"] * 0.55 + 0.45 * f["eye_h"] * 0.5
    r = np.sqrt(du * du + (dv / np.where(dv < 0, f["eye_open"], lower)) ** 2)
    eye = _soft(r - 1, eps * 4)
    gx, gy = _col(gaze[:, 0]), _col(gaze[:, 1])
    iu = (u - np.sign(u) * f["eye_sep"] - gx * f["eye_w"] * 0.35) / f["eye_w"]
    ir = np.sqrt(iu ** 2 + ((v - f["eye_y"] - gy * 0.02) / (f["eye_w"] * 1.0)) ** 2)
    iris, pupil = _soft(ir - 0.56, 0.12) * eye, _soft(ir - 0.2, 0.08) * eye
    lash = _soft(np.abs(r - 1.08) - 0.16, 0.1) * (dv < 0.01)
    socket = _gauss(du * 0.7, 1.0) * _gauss(dv + 0.03, 0.12)
    return eye, iris, pupil, lash, socket


def _brows(u: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray], eps: float) -> np.ndarray:
    """Brow mask: inner end moves with AU1/AU4, outer end with AU2, pinched inwards by AU4."""
    inner = 0.08 - f["brow_pinch"] + 0.02
    outer = f["eye_sep"] + f["eye_w"] * 1.25
    t = (np.abs(u) - inner) / (outer - inner)
    tc = np.clip(t, 0, 1)
    line = f["brow_in"] * (1 - tc) + f["brow_out"] * tc - f["brow_arch"] * 4 * tc * (1 - tc)
    thick = f["brow_thick"] * (1.1 - 0.5 * tc)
    return _soft(np.abs(v - line) - thick, eps * 2) * _soft(np.abs(t - 0.5) - 0.5, 0.08)


def _height(u, v, f, head_depth, inside) -> np.ndarray:
    """Height field: ellipsoid + brow ridge + nose + cheeks + lips + chin − sockets − mouth."""
    au = np.abs(u)
    z = 0.9 * head_depth
    z = z + 0.06 * _gauss(v - f["brow_y"] - 0.06, 0.05) * _gauss(au - 0.3, 0.22)
    tn = np.clip((v - f["eye_y"] + 0.05) / (f["nose_len"] + 0.1), 0, 1)
    nose_top = f["eye_y"] + f["nose_len"] + 0.12
    z = z + f["nose_h"] * tn * _gauss(u, f["nose_w"] * (0.35 + 0.65 * tn)) * _soft(v - nose_top, 0.06)
    z = z + 0.08 * _gauss(au - 0.42, 0.14) * _gauss(v - 0.28 + f["cheek_up"], 0.13) * (1 + 0.8 * f["cheek_up"] / 0.09)
    z = z + 0.05 * _gauss(u, 0.2) * _gauss(v - f["mouth_c"], 0.08) + 0.04 * _gauss(u, 0.2) * _gauss(v - f["chin"] + 0.12, 0.08)
    z = z - 0.10 * _gauss(au - f["eye_sep"], 0.13) * _gauss(v - f["eye_y"] + 0.03, 0.08)
    z = z - 0.04 * f["fold"] * _gauss(au - 0.2 - 0.6 * np.clip(v - 0.3, 0, 0.4), 0.025) * ((v > 0.3) & (v < f["mouth_c"] + 0.1))
    return z - 0.10 * inside


def _skin_albedo(u, v, f, skin: np.ndarray, beard: np.ndarray) -> np.ndarray:
    """Skin with bright cheeks, texture, age wrinkles, frown and nose-wrinkle lines (N, H, W, 3)."""
    au = np.abs(u)
    tex = 1 + 0.025 * np.sin(23 * u + f["texture_phase"]) * np.sin(19 * v - f["texture_phase"])
    lines = f["age"] ** 2 * 0.10 * (np.sin(v * 90) > 0.6) * _gauss(v + 0.6, 0.1) * (au < 0.5)
    lines = lines + 0.35 * f["frown"] * _gauss(au - 0.05, 0.012) * _gauss(v - f["brow_y"] - 0.02, 0.07)
    lines = lines + 0.35 * f["wrinkle_nose"] * (np.sin(v * 110) > 0.3) * _gauss(u, 0.07) * _gauss(v - f["eye_y"] - 0.02, 0.05)
    shade = tex * (1 - lines) * (1 + 0.10 * _gauss(au - 0.45, 0.14) * _gauss(v - 0.3, 0.12))
    stubble = _col(beard) * 0.25 * _soft(0.45 - v, 0.1) * _soft(au - 0.75, 0.1)
    return skin * (shade * (1 - stubble))[..., None]


def _compose_albedo(u, v, f, ids, gaze, eps) -> tuple[np.ndarray, ...]:
    """Paint skin, hair, brows, eyes, lips, mouth; return albedo, face mask, mouth interior, depth."""
    head, depth = _head_mask(u, v, f, eps)
    lips, inside = _mouth(u, v, f, eps)
    eye, iris, pupil, lash, socket = _eyes(u, v, f, gaze, eps)
    brow = _brows(u, v, f, eps)
    skin = {k: ids[k].reshape(-1, 1, 1, 3) for k in ("skin", "hair", "lips", "iris")}
    alb = _skin_albedo(u, v, f, skin["skin"], ids["beard"])
    alb = alb * (1 - 0.5 * socket)[..., None]
    nostril = _soft(np.sqrt(((np.abs(u) - f["nose_w"] * 0.7) / 0.04) ** 2 + ((v - f["eye_y"] - f["nose_len"] - 0.1) / 0.02) ** 2) - 1, 0.5)
    alb = alb * (1 - 0.6 * nostril)[..., None]
    alb = _mix(alb, skin["lips"], lips)
    teeth = _soft(np.abs(u) - f["mouth_hw"] * 0.6, 0.05) * f["smile"]
    alb = _mix(alb, np.float32(0.05) + teeth[..., None] * 0.7, inside)
    alb = _mix(alb, np.float32(0.72), eye)
    alb = _mix(alb, skin["iris"], iris)
    alb = _mix(alb, np.float32(0.03), np.maximum(pupil, lash))
    alb = _mix(alb, np.minimum(skin["hair"] * 0.6, 0.15), brow)  # brows stay dark when hair greys
    alb = _mix(alb, np.float32(0.08), _glasses(u, v, f, eps))
    hair = _hair_mask(u, v, f, eps)
    alb = _mix(alb, skin["hair"] * (1 + 0.08 * np.sin(60 * u + 8 * v))[..., None], hair)
    return alb, np.maximum(head, hair), inside, depth


def _glasses(u, v, f, eps) -> np.ndarray:
    """Thin dark frames around both eyes and a bridge, for people with the glasses flag."""
    r = np.sqrt(((np.abs(u) - f["eye_sep"]) / (f["eye_w"] * 1.45)) ** 2 + ((v - f["eye_y"]) / 0.13) ** 2)
    bridge = _soft(np.abs(v - f["eye_y"] + 0.03) - 0.012, eps) * (np.abs(u) < f["eye_sep"] - f["eye_w"] * 1.3)
    return np.maximum(_soft(np.abs(r - 1) - 0.05, 0.08), bridge) * f["glasses"]


def _hair_mask(u, v, f, eps) -> np.ndarray:
    """Hair: above a wavy hairline inside a slightly larger skull, plus side hair down to hair_len."""
    skull = _soft(np.sqrt((u / (f["head_w"] * 1.08)) ** 2 + ((v + 0.08) / (f["head_h"] * 1.05)) ** 2) - 1, eps)
    line = f["hairline"] + 0.05 * np.cos(u * 5) + 0.25 * (np.abs(u) > 0.75)
    top = _soft(v - line, eps * 2) * skull
    outer = _soft(np.sqrt((u / (f["head_w"] * 1.14)) ** 2 + ((v + 0.1) / (f["head_h"] * 1.2)) ** 2) - 1, eps)
    side = outer * _soft(0.8 * f["head_w"] - np.abs(u), eps * 3) * _soft(v - f["hair_len"] + 0.2, 0.15)
    return np.maximum(top, side * (f["hair_len"] > 0.3)).astype(F32)


def _mix(base: np.ndarray, top: np.ndarray | np.float32, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend ``top`` over ``base`` in place with a (N, H, W) mask, on the rows it covers.

    Eyes, lips and brows cover a few rows each, so blending only that band saves most of the work;
    outside it the mask is exactly 0 and the full blend would leave ``base`` unchanged anyway.
    """
    rows = np.flatnonzero(alpha.any(axis=(0, 2)))
    if rows.size == 0:
        return base
    band = slice(rows[0], rows[-1] + 1)
    if np.ndim(top) == 4 and np.shape(top)[1] > 1:
        top = top[:, band]
    under = base[:, band]
    under += (top - under) * alpha[:, band, :, None]
    return base


def render_faces(identities: dict[str, np.ndarray], aus: np.ndarray, pose: np.ndarray,
                 light: np.ndarray, size: tuple[int, int], color: bool = True,
                 frame: np.ndarray | None = None, gaze: np.ndarray | None = None,
                 background: np.ndarray | None = None) -> np.ndarray:
    """Render N shaded faces in one vectorised pass; returns uint8 (N, H, W, 3) or (N, H, W).

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
    """
    n, (h, w) = len(aus), size
    frame = np.tile([w / 2, h / 2, min(h, w) * 0.33], (n, 1)).astype(F32) if frame is None else frame
    gaze = np.zeros((n, 2), F32) if gaze is None else gaze
    background = np.full((n, 3), 0.5, F32) if background is None else background
    out = np.empty((n, h, w, 3) if color else (n, h, w), np.uint8)
    # The pixel grid is the vectorised axis; a few faces per pass keep the temporaries in cache.
    step = max(1, CACHE_PIXELS // (h * w))
    gray = np.array([0.299, 0.587, 0.114], F32)
    for i in range(0, n, step):
        sl = slice(i, i + step)
        bg, win, face = _render_chunk({k: v[sl] for k, v in identities.items()}, aus[sl], pose[sl], light[sl],
                                      size, frame[sl], gaze[sl], background[sl])
        # Background rows are shared by every column, so they are converted once per row.
        out[sl] = _to_uint8(bg, gray, color)
        if win is not None:
            out[sl][win] = _to_uint8(face, gray, color)
    return out


def _render_chunk(identities, aus, pose, light, size, frame, gaze, background) -> tuple:
    """Render a few faces: background (N, H, 1, 3), the window the faces cover, its RGB (all in [0, 1])."""
    h, w = size
    u, v, s = _face_coords(h, w, pose, frame)
    f = _features(identities, aus)
    eps = 1.5 / s
    bg = background.reshape(-1, 1, 1, 3) * (1 - 0.25 * np.linspace(0, 1, h, dtype=F32)[None, :, None, None])
    win = _face_window(u, v, f, eps)
    if win is None:
        return bg, None, None
    u, v = u[win], v[win]
    alb, mask, inside, depth = _compose_albedo(u, v, f, identities, gaze, eps)
    z = _height(u, v, f, depth, inside) * s  # in pixels
    shade = _lambert(z, pose, light)
    face = np.array(np.broadcast_to(bg[:, win[1]], alb.shape))
    return bg, win, _mix(face, alb * shade[..., None], mask)


def _to_uint8(rgb: np.ndarray, gray: np.ndarray, color: bool) -> np.ndarray:
    """Gamma-encode linear RGB in [0, 1] to 8 bits, as RGB or as luminance."""
    img = np.clip(rgb, 0, 1) ** (1 / 2.2)
    if not color:
        img = img @ gray
    return img * 255 + 0.5


def _face_window(u: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray], eps: np.ndarray,
                 margin: int = 2) -> tuple[slice, slice, slice] | None:
    """Pixel window holding every pixel that head or hair can cover, plus ``margin``; None if off-frame.

    The bounds enclose the head, skull and side-hair ellipses of ``_head_mask``/``_hair_mask``
    grown by their soft edge, so the image is the same as shading the whole frame: outside, the
    face mask is exactly 0, and inside, ``margin`` >= 1 keeps the shading gradients two-sided.
    """
    grow = 1 + eps
    v_lo = -(0.1 + 1.2 * f["head_h"]) * grow
    v_hi = np.maximum(f["chin"], 1.2 * f["head_h"] - 0.1) * grow
    cover = ((np.abs(u) < 1.14 * f["head_w"] * grow) & (v > v_lo) & (v < v_hi)).any(axis=0)
    rows, cols = np.flatnonzero(cover.any(axis=1)), np.flatnonzero(cover.any(axis=0))
    if rows.size == 0:
        return None
    h, w = cover.shape
    return (slice(None), slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


def _lambert(z: np.ndarray, pose: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Ambient + Lambertian shading of the height field; the light is turned with the head."""
    gy, gx = np.gradient(z, axis=(1, 2))
    norm = np.sqrt(gx * gx + gy * gy + 1)
    ld = light[:, :3] / np.linalg.norm(light[:, :3], axis=1, keepdims=True)
    yaw = pose[:, 0]
    lx = ld[:, 0] * np.cos(yaw) - ld[:, 2] * np.sin(yaw)
    lz = ld[:, 0] * np.sin(yaw) + ld[:, 2] * np.cos(yaw)
    ndotl = (-gx * _col(lx) - gy * _col(-ld[:, 1]) + _col(lz)) / norm
    return (_col(light[:, 3]) + _col(light[:, 4]) * np.clip(ndotl, 0, 1)).astype(F32)
