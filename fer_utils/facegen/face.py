"""What a face is: geometry moved by the action units, its relief, and its painted surface.

Everything here is a per-pixel function of face coordinates (u, v), in face units: head half-width
1, ``v`` grows downwards, origin at the head centre. Per-face quantities have shape (N, 1, 1) so
that they broadcast over the (N, H, W) pixel grid. Features are mostly compact polynomial bumps
(``_bump``), not Gaussians: they cost a few multiplications per pixel, and an action unit's change
stays inside the region it belongs to (what ``regions`` and the tests check).

The appearance changes follow FACS (Ekman, Friesen & Hager 2002): an action unit does not only move
a feature's outline, it folds, bulges and wrinkles the skin around it (furrows between the brows
for AU4, crow's feet and a lower-lid bulge for AU6, nose-root wrinkles for AU9, ...). Folds are
relief (they shade with the light) and occlusion (they stay dark under frontal light, as creases
do in photographs); age deepens them.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .expressions import AU_INDEX

F = dict[str, Tensor]
SCLERA = (0.86, 0.80, 0.78)
TEETH = (0.88, 0.84, 0.74)
RED = (0.12, -0.07, -0.07)  # how blood under the skin shifts each channel
SHADOWED = (0.08, 0.14, 0.10)  # how the thin skin under the eyes darkens each channel


def soft(d: Tensor, eps: float | Tensor) -> Tensor:
    """Soft inside-mask of a signed distance (negative inside), edge width ``eps``.

    Multiplies by the reciprocal: a compiled loop divides per pixel several times slower than it multiplies.
    """
    return (0.5 - d * (1.0 / eps)).clamp(0.0, 1.0)


def bump(x: Tensor, s: float | Tensor) -> Tensor:
    """Smooth compact bump: 1 at 0, 0 beyond |x| >= s (cheaper than a Gaussian, and local)."""
    t = (1 - x * x * (1.0 / (s * s))).clamp(min=0.0)
    return t * t


def wave(x: Tensor) -> Tensor:
    """Periodic wave in [-1, 1], period 2*pi: a triangle, several times cheaper per pixel than a sine."""
    t = x * (0.5 / math.pi)
    return 1 - 4 * (t - torch.floor(t) - 0.5).abs()


def ridges(x: Tensor) -> Tensor:
    """Evenly spaced soft lines, one per 2*pi of ``x`` (wrinkles)."""
    t = wave(x).clamp(min=0.0)
    return t * t


def col(x: Tensor) -> Tensor:
    """Reshape (N,) to (N, 1, 1) for broadcasting over pixels."""
    return x.view(-1, 1, 1)


def mix(base: Tensor, top: Tensor | float, alpha: Tensor) -> Tensor:
    """Alpha-blend ``top`` over ``base`` (one colour channel) with an (N, H, W) mask."""
    return base + (top - base) * alpha


def features(ids: F, aus: Tensor) -> F:
    """Identity + AU intensities -> the moving geometry and the depth of every fold (face units)."""
    a = {au: col(aus[:, i]) for au, i in AU_INDEX.items()}
    f = dict(ids)
    deep = 0.5 + 0.8 * f["age"]  # the same action folds older skin more
    f["brow_in"] = f["brow_y"] - 0.12 * a[1] + 0.12 * a[4] + 0.05 * a[9]
    f["brow_out"] = f["brow_y"] - 0.10 * a[2] + 0.02 * a[4] + 0.02 * a[9]
    f["brow_pinch"] = 0.05 * a[4]
    f["lid_up"] = f["eye_h"] * (1 + 0.8 * a[5] - 0.35 * a[7] - 0.25 * a[6] - 0.3 * a[9] - 0.15 * a[4]).clamp(0.15, 2.2)
    f["lid_lo"] = f["eye_h"] * 0.6 * (1 - 0.6 * a[7] - 0.5 * a[6] - 0.2 * a[9]).clamp(0.15, 1.2)
    f["lid_flat"] = (a[7] + 0.3 * a[6]).clamp(0, 1)  # AU7 straightens the lower lid
    f["cheek_up"] = 0.06 * a[6] + 0.03 * a[12] + 0.02 * a[9] + 0.015 * a[10]
    f["mouth_hw"] = f["mouth_w"] * (1 + 0.22 * a[12] + 0.28 * a[20] - 0.2 * a[23] - 0.08 * a[26]
                                    + 0.06 * a[14] - 0.04 * a[10])
    f["corner_r"] = -0.14 * a[12] + 0.10 * a[15] + 0.03 * a[20] - 0.02 * a[6]
    f["corner_l"] = f["corner_r"] - 0.07 * a[14]  # contempt: one side only
    f["mouth_c"] = f["mouth_y"] - 0.02 * a[9] + 0.03 * a[26]
    f["lip_raise"] = 0.05 * a[10] + 0.02 * a[9]  # upper lip lifted off the teeth
    f["lip_drop"] = 0.06 * a[16] + 0.24 * a[26] + 0.02 * a[20]  # lower lip and jaw
    f["parted"] = 0.03 * a[12] * a[6] + 0.025 * a[20] + 0.01 * a[1] * a[5]
    f["lip_up"] = f["lip_up"] * (1 - 0.55 * a[23] - 0.35 * a[20])
    f["lip_lo"] = f["lip_lo"] * (1 - 0.5 * a[23] - 0.35 * a[20]) + 0.015 * a[16]
    f["lower_teeth"] = (a[16] + 0.5 * a[20] + 0.2 * a[26]).clamp(0, 1)
    f["chin"] = f["head_h"] + 0.13 * a[26]
    f["nostril_up"] = 0.03 * a[9] + 0.015 * a[10]
    f["flare"] = 0.3 * a[9] + 0.15 * a[10]
    f["hollow"] = 0.5 * a[26]  # cheeks stretched by the open jaw
    f["forehead_mid"] = a[1] * deep + 0.3 * f["age"] ** 2
    f["forehead_side"] = a[2] * deep + 0.3 * f["age"] ** 2
    f["furrow"] = a[4] * deep
    f["crows"] = a[6] * deep + 0.3 * f["age"] ** 2
    f["lid_bulge"] = 0.7 * a[6] + 0.5 * a[7]
    f["nose_wrinkle"] = a[9] * deep
    f["fold"] = 0.12 + 0.4 * f["age"] + (0.8 * a[12] + 0.6 * a[9] + 0.6 * a[10] + 0.3 * a[6]) * deep
    f["chin_wrinkle"] = a[15] * deep
    f["dimple"] = a[14]
    f["press"] = a[23]
    f["stretch"] = a[20] * deep
    f["bags"] = 0.5 * f["age"] ** 2
    return f


def face_coords(h: int, w: int, pose: Tensor, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Map pixels to face units through frame (cx, cy, scale px/unit) and pose (yaw, pitch, roll)."""
    ys = torch.arange(h, dtype=torch.float32, device=pose.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=pose.device).view(1, 1, w)
    cx, cy, s = col(frame[:, 0]), col(frame[:, 1]), col(frame[:, 2])
    yaw, pitch, roll = col(pose[:, 0]), col(pose[:, 1]), col(pose[:, 2])
    x, y = (xs - cx) * (1 / s), (ys - cy) * (1 / s)
    u = x * torch.cos(roll) + y * torch.sin(roll)
    v = -x * torch.sin(roll) + y * torch.cos(roll)
    # Rotating a round head shifts its central features by sin(angle) and keeps the outline.
    bulge = (1 - u * u * (1 / 1.1)).clamp(0, 1) * (1 - v * v * 0.5).clamp(0, 1)
    u = (u - 0.75 * torch.sin(yaw) * bulge) * (1 / (0.55 + 0.45 * torch.cos(yaw)))
    v = (v - 0.6 * torch.sin(pitch) * bulge) * (1 / (0.6 + 0.4 * torch.cos(pitch)))
    return u, v, s


def head(u: Tensor, v: Tensor, f: F, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Head outline (forehead ellipse narrowing into a jaw), its ellipsoid depth and elliptic radius."""
    vn = (v * (1 / f["chin"])).clamp(0, 1)
    half_w = f["head_w"] * (1 - f["jaw"] * vn ** 2)
    vb = torch.where(v > 0, f["chin"], f["head_h"] * 0.95)
    r2 = (u / half_w) ** 2 + (v / vb) ** 2
    r = torch.sqrt(r2)
    return soft(r - 1, eps), torch.sqrt((1 - r2).clamp(0, 1)), r


def nose_tip(f: F) -> Tensor:
    """Height (v) of the nose tip; AU9 and AU10 lift it a little with the nostrils."""
    return f["eye_y"] + f["nose_len"] + 0.16 - 0.3 * f["nostril_up"]


def nose(u: Tensor, v: Tensor, f: F) -> Tensor:
    """Height of the nose: a ridge from between the eyes, a rounded tip and the two wings."""
    top = f["eye_y"] - 0.05
    tip_v = nose_tip(f)
    tn = ((v - top) * (1 / (tip_v - top))).clamp(0, 1)
    ridge = 0.8 * f["nose_h"] * tn * (1.4 - 0.4 * tn) * bump(u, f["nose_w"] * (1.0 + 0.5 * tn)) * soft(v - tip_v, 0.06)
    tip = f["nose_h"] * bump(u, f["nose_w"] * 1.1) * bump(v - tip_v, 0.1)
    wing_u = f["nose_w"] * (0.95 + 0.3 * f["flare"])
    wings = 0.4 * f["nose_h"] * bump(u.abs() - wing_u, 0.08) * bump(v - tip_v - 0.02, 0.07)
    return torch.maximum(ridge, tip) + wings


def nostrils(u: Tensor, v: Tensor, f: F) -> Tensor:
    """The dark openings under the tip, lifted and widened by AU9/AU10."""
    w = 1 + f["flare"]
    r = torch.sqrt(((u.abs() - f["nose_w"] * 0.55 * w) * (20 / w)) ** 2 + ((v - nose_tip(f) - 0.06) * (1 / 0.028)) ** 2)
    return soft(r - 1, 0.8)


def nose_shadow(u: Tensor, v: Tensor, f: F, light: tuple[Tensor, Tensor, Tensor], here: Tensor) -> Tensor:
    """Shadow the nose casts: lit unless the nose, a step towards the light, rises above the ray.

    ``here`` is the nose's height at (u, v), as ``height`` computed it.
    """
    lx, ly, lz = light
    d = 0.5 * f["nose_h"]
    reach = d / lz.clamp(min=0.25)
    rise = nose(u + lx * reach, v + ly * reach, f) - here
    return 1 - ((rise - d) * 25).clamp(0, 1)


def mouth(u: Tensor, v: Tensor, f: F, eps: Tensor) -> F:
    """Lips, the open mouth and what shows inside it (upper and lower teeth, tongue, dark depth)."""
    t = u * (1 / f["mouth_hw"])
    env = (1 - t * t).clamp(0, 1)
    rs = torch.sqrt(env)
    corner = torch.where(u < 0, f["corner_l"], f["corner_r"])
    centre = f["mouth_c"] + corner * t * t
    upper_in = centre - (0.5 * f["parted"] + f["lip_raise"]) * rs
    lower_in = centre + (0.5 * f["parted"] + f["lip_drop"]) * env
    bow = 0.012 * bump(u.abs() - 0.05, 0.06)  # the Cupid's bow of the upper lip
    top = upper_in - 1.3 * f["lip_up"] * rs - bow
    bottom = lower_in + 1.3 * f["lip_lo"] * rs
    ends = soft(t.abs() - 1, eps * 3)
    inside = soft(torch.maximum(upper_in - v, v - lower_in), eps) * (env > 0)
    gap = (lower_in - upper_in).clamp(min=1e-3)
    upper_teeth = soft(v - upper_in - 0.055 * rs, eps) * soft(t.abs() - 0.78, 0.1)
    lower_teeth = soft(lower_in - 0.035 * rs * f["lower_teeth"] - v, eps) * soft(t.abs() - 0.7, 0.1) * f["lower_teeth"]
    tongue = soft(centre + 0.6 * gap - v, 0.03) * soft(t.abs() - 0.6, 0.2) * (gap > 0.08)
    depth = bump((v - (upper_in + lower_in) / 2) / gap, 0.9) * bump(t, 1.2)  # the far inside gets no light
    return {"lips": soft(torch.maximum(top - v, v - bottom), eps) * ends, "inside": inside,
            "teeth": torch.maximum(upper_teeth, lower_teeth) * inside, "tongue": tongue * inside,
            "depth": depth * inside, "top": top, "bottom": bottom, "seam": bump(v - centre, 0.012) * ends}


def eyes(u: Tensor, v: Tensor, f: F, gaze: Tensor, eps: Tensor) -> F:
    """Eye openings between the lids, iris, limbus, pupil, lash line, lid crease and the lid's shadow."""
    au = u.abs()
    du = (au - f["eye_sep"]) * (1 / f["eye_w"])
    sq = torch.sqrt((1 - du * du).clamp(min=0))
    tilt = 0.02 * du  # outer corners sit a little higher
    top = f["eye_y"] - f["lid_up"] * sq - tilt
    low_round = f["lid_lo"] * sq
    low_flat = f["lid_lo"] * 0.75 * torch.sqrt(sq)  # a straightened lower lid
    bot = f["eye_y"] + low_round + (low_flat - low_round) * f["lid_flat"] - 0.5 * tilt
    opening = soft(torch.maximum(top - v, v - bot), eps) * soft(du.abs() - 1, 0.15)
    gx, gy = col(gaze[:, 0]), col(gaze[:, 1])
    iu = (u - torch.sign(u) * f["eye_sep"] - gx * f["eye_w"] * 0.35) * (1 / f["eye_w"])
    iv = (v - f["eye_y"] - gy * 0.02) * (1 / f["eye_w"])
    ir = torch.sqrt(iu * iu + iv * iv)
    lash = soft((v - top + 0.006).abs() - 0.011 - 0.012 * du.clamp(min=0), eps) * soft(du.abs() - 1.12, 0.12)
    crease_v = f["eye_y"] - 1.6 * f["eye_h"] - 0.03  # the lid fold: fixed on the orbit, met by a raised lid
    return {"open": opening, "iris": soft(ir - 0.5, 0.1) * opening, "limbus": bump(ir - 0.48, 0.1) * opening,
            "pupil": soft(ir - 0.17, 0.08) * opening, "ir": ir,
            "lid_shadow": opening * (1 - ((v - top) * (1 / 0.06)).clamp(0, 1)), "lash": lash,
            "crease": bump(v - crease_v - 0.02 * du * du, 0.02) * bump(du, 1.15) * soft(crease_v - top + 0.01, 0.02),
            "ball": sq * bump(v - f["eye_y"], 0.14)}


def brows(u: Tensor, v: Tensor, f: F, eps: Tensor) -> Tensor:
    """Brow hair density: inner end moves with AU1/AU4, outer end with AU2; hairs thin towards the tail."""
    inner = 0.1 - f["brow_pinch"]
    outer = f["eye_sep"] + f["eye_w"] * 1.25
    t = (u.abs() - inner) * (1 / (outer - inner))
    tc = t.clamp(0, 1)
    line = f["brow_in"] * (1 - tc) + f["brow_out"] * tc - f["brow_arch"] * 4 * tc * (1 - tc)
    thick = f["brow_thick"] * (1.1 - 0.5 * tc)
    hairs = 0.82 + 0.18 * wave(u.abs() * 90 - (v - line) * 50 + f["grain"])
    return soft((v - line).abs() - thick, eps * 2) * soft((t - 0.5).abs() - 0.5, 0.08) * hairs * (1 - 0.3 * tc)


def hair(u: Tensor, v: Tensor, f: F, eps: Tensor, face_area: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hair: a volume around the skull over everything that is not face, down to its length at the sides.

    Returns density (soft at an irregular hairline), strands fanning out from the parting, and depth.
    """
    ph = f["texture_phase"]
    wob = 0.03 * wave(u * 7 + ph) + 0.015 * wave(u * 19 + 2 * ph)
    r_cap = torch.sqrt((u * (1 / (f["head_w"] * 1.13))) ** 2 + ((v + 0.12) * (1 / (f["head_h"] * 1.02))) ** 2)
    cap = soft(r_cap - 1 - wob, eps * 1.5)
    line = f["hairline"] + 0.05 * wave(u * 5) + 0.015 * wave(u * 41 + ph)
    forehead = face_area * soft(line - v, 0.06)  # face below the hairline
    sides = soft(v - torch.maximum(f["hair_len"], f["eye_y"] + 0.1), 0.12)  # short hair stops at the ears
    density = cap * (1 - forehead) * torch.maximum(sides, soft(v - line, 0.06))
    s = (u - f["part"]) / (v + 1.5).clamp(min=0.2)  # strands fan out from the parting
    strands = 0.8 + 0.12 * wave(s * 45 + 2 * wave(s * 6 + ph)) + 0.08 * wave(s * 130 + f["grain"])
    depth = 0.95 * torch.sqrt((1 - r_cap * r_cap).clamp(0, 1)) + 0.04 + 0.01 * strands
    return density, strands, depth


def ears(u: Tensor, v: Tensor, f: F, eps: Tensor) -> tuple[Tensor, Tensor]:
    """Ears beside the head (behind its outline) and the shadowed bowl inside them."""
    du = u.abs() - f["head_w"] * 0.97 - 0.05
    dv = v - f["eye_y"] - 0.13
    r = torch.sqrt((du * 10) ** 2 + (dv * (1 / 0.21)) ** 2)
    return soft(r - 1, eps * 10), bump(r - 0.25, 0.45)


def body(u: Tensor, v: Tensor, f: F, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Neck and clothed shoulders below the head, with the jaw's shadow on the neck."""
    au = u.abs()
    neck_w = 0.56 * f["head_w"] + 0.06 * f["male"]
    neck = soft(au - neck_w, eps) * soft(0.2 - v, eps)
    shoulder = f["head_h"] + 0.2 + 0.45 * torch.sqrt(((au - neck_w) * (1 / 1.3)).clamp(0, 1))
    neckline = f["head_h"] + 0.4 + 0.15 * bump(u, neck_w * 1.3)
    clothes = soft(torch.minimum(shoulder, neckline + 0.6 * (au - neck_w).clamp(min=0)) - v, eps * 2)
    # behind the jaw's edge (the head's relief ends at 0 there), so the jaw stands out of the neck
    torso_z = 0.55 * torch.sqrt((1 - (u * (1 / 2.2)) ** 2).clamp(0, 1)) - 0.75
    return neck, clothes, torso_z + 0.25 * bump(u, neck_w * 1.2)


def creases(u: Tensor, v: Tensor, f: F, m: F) -> tuple[Tensor, Tensor]:
    """Folds and bulges of the skin that the action units (and age) make: (relief, crease darkness)."""
    au = u.abs()
    by = f["brow_y"]
    # AU1 + AU2: horizontal forehead lines (AU1 in the middle, AU2 at the sides)
    lines = ridges((v - by) * 50 + 0.25 * wave(4 * u)) * bump(v - by + 0.28, 0.2)
    forehead = (f["forehead_mid"] * bump(u, 0.55) + f["forehead_side"] * bump(au - 0.5, 0.4)) * lines
    # AU4: vertical furrows between the brows, the skin bunched between them
    glabella = f["furrow"] * bump(au - 0.06, 0.04) * bump(v - by + 0.02, 0.13)
    bunch = f["furrow"] * bump(u, 0.09) * bump(v - by + 0.05, 0.1)
    # AU6: crow's feet fanning from the outer eye corners; AU6/7: the lower lid bulges
    du = au - f["eye_sep"] - f["eye_w"] * 1.1
    dv = v - f["eye_y"]
    fan = ridges(dv / (du.clamp(min=0) + 0.05) * 5) * (du > 0) * bump(du, 0.17) * bump(dv, 0.13)
    crows = f["crows"] * fan
    below = v - f["eye_y"] - f["lid_lo"] - 0.035
    at_eye = bump(au - f["eye_sep"], f["eye_w"] * 1.15)
    lid_bulge = (f["lid_bulge"] * bump(below, 0.035) + f["bags"] * bump(below - 0.05, 0.05)) * at_eye
    infraorbital = (0.6 * f["lid_bulge"] + f["bags"]) * at_eye * bump(below - 0.075, 0.025)
    # AU9: wrinkles across the root of the nose
    root = f["nose_wrinkle"] * ridges((v - f["eye_y"]) * 80) * bump(u, 0.14) * bump(v - f["eye_y"] - 0.03, 0.1)
    # nasolabial fold from the nose wing past the mouth corner (AU12, AU9, AU10, age deepen it)
    nb = nose_tip(f) + 0.03
    end = f["mouth_c"] + 0.14
    tf = ((v - nb) * (1 / (end - nb))).clamp(0, 1)
    fold_u = f["nose_w"] + 0.1 + tf * (f["mouth_hw"] + 0.06 - f["nose_w"] - 0.1) + 0.05 * tf * (1 - tf)
    fold = f["fold"] * bump(au - fold_u, 0.035) * bump(v - (nb + end) / 2, (end - nb) / 2 + 0.02)
    # AU15: the chin's skin wrinkles; the groove under the lower lip deepens
    chin_c = (m["bottom"] + f["chin"]) / 2
    chin_skin = bump(u, 0.22) * bump(v - chin_c, 0.12)
    pebbles = f["chin_wrinkle"] * chin_skin * wave(u * 55 + f["grain"]) * wave(v * 50)
    labiomental = (0.25 + f["chin_wrinkle"]) * bump(u, 0.22) * bump(v - m["bottom"] - 0.05, 0.03)
    # AU14 dimple (one side), AU20 stretch lines beside the corners, AU23 pressed lips' bulge
    dimple = f["dimple"] * bump(u + f["mouth_hw"] + 0.04, 0.035) * bump(v - f["mouth_c"], 0.07)
    stretch = f["stretch"] * bump(au - f["mouth_hw"] - 0.09, 0.07) * bump(v - f["mouth_c"], 0.06) * ridges(v * 90)
    pressed = f["press"] * bump(u, f["mouth_hw"] * 1.4) * bump(v - f["mouth_c"], 0.15)
    groove = (0.8 * forehead + 1.6 * glabella + 0.7 * crows + infraorbital + 0.9 * root + 2.0 * fold
              + 1.2 * labiomental + 1.2 * dimple + 0.5 * stretch)
    relief = -0.018 * groove + 0.02 * bunch + 0.03 * lid_bulge + 0.006 * pebbles + 0.02 * pressed
    return relief, groove


def height(u: Tensor, v: Tensor, f: F, depth: Tensor, m: F, e: F, nose_z: Tensor) -> Tensor:
    """Relief of the face: ellipsoid, brow ridge, cheekbones, sockets, temples, eyeballs, nose, lips, chin."""
    au = u.abs()
    z = 0.9 * depth
    z = z + 0.06 * bump(v - f["brow_y"] + 0.02, 0.12) * bump(au - 0.3, 0.45)
    z = z + 0.07 * bump(au - 0.5, 0.3) * bump(v - 0.1 + f["cheek_up"], 0.24) * (1 + 8 * f["cheek_up"])
    z = z - 0.04 * f["hollow"] * bump(au - 0.55, 0.25) * bump(v - 0.45, 0.2)
    z = z - 0.12 * bump(au - f["eye_sep"], 0.25) * bump(v - f["eye_y"], 0.16)
    z = z + 0.05 * e["ball"] + 0.015 * bump(e["ir"], 0.55) * e["open"]
    z = z - 0.05 * bump(au - 0.9, 0.25) * bump(v + 0.25, 0.35)
    z = z + nose_z
    z = z + 0.05 * bump(u, f["mouth_hw"] * 1.25) * bump(v - f["mouth_c"], 0.13)
    z = z + 0.02 * m["lips"] * bump(v - (m["top"] + m["bottom"]) / 2, 0.1)
    z = z + 0.045 * bump(u, 0.26) * bump(v - f["chin"] + 0.14, 0.13)
    return z - 0.15 * m["inside"] - 0.01 * e["crease"]


def skin_tone(u: Tensor, v: Tensor, f: F) -> tuple[Tensor, Tensor, Tensor]:
    """Skin's variation: mottling and fine grain (factor), blood (redness) and thin dark skin under the eyes."""
    au = u.abs()
    ph, gr = f["texture_phase"], f["grain"]
    grain = (1 + 0.035 * wave(7 * u + ph) * wave(9 * v - ph) + 0.02 * wave(17 * u - 13 * v + gr)
             + 0.014 * wave(71 * u + gr) * wave(67 * v + ph))
    tip_v = nose_tip(f)
    blood = f["redness"] * (0.45 * bump(au - 0.47, 0.35) * bump(v - 0.22, 0.3)
                            + 0.5 * bump(u, 0.13) * bump(v - tip_v, 0.13) + 0.5 * bump(au - 1.05, 0.15))
    under = (0.5 + f["age"]) * bump(au - f["eye_sep"], 0.2) * bump(v - f["eye_y"] - 0.11, 0.07)
    return grain, blood, under


def glasses(u: Tensor, v: Tensor, f: F, eps: Tensor) -> Tensor:
    """Thin dark frames around both eyes and a bridge, for people with the glasses flag."""
    r = torch.sqrt(((u.abs() - f["eye_sep"]) * (1 / (f["eye_w"] * 1.45))) ** 2 + ((v - f["eye_y"]) * (1 / 0.13)) ** 2)
    bridge = soft((v - f["eye_y"] + 0.03).abs() - 0.012, eps) * (u.abs() < f["eye_sep"] - f["eye_w"] * 1.3)
    return torch.maximum(soft((r - 1).abs() - 0.05, 0.08), bridge) * f["glasses"]


def stubble(u: Tensor, v: Tensor, f: F) -> Tensor:
    """Beard shadow over the jaw, chin and upper lip of people with the beard flag."""
    au = u.abs()
    area = soft(0.42 - v, 0.1) * soft(au - 0.78, 0.1) * (1 - bump(au - 0.55, 0.35) * bump(v - 0.3, 0.15))
    return f["beard"] * area * (0.75 + 0.25 * wave(u * 150 + f["grain"]) * wave(v * 140))
