"""The six database layouts, each written from its own subject pool and style.

Every writer splits its database into jobs (one subject or one chunk of images), each with its
own generator seeded from (world seed, database, job), so the bytes do not depend on how many
processes run the jobs. A job writes its files and returns the records the manifest counts.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from ..emotions import AFFECTNET_CODES, ALL_LABELS, CKPLUS_CODES, MMI_CODES, OULU_FOLDERS
from .expressions import AUS, expression_aus
from .identity import sample_identities, take
from .styles import STYLES, Style, image_shape, nuisance, render_style

SIX = ("angry", "disgusted", "fearful", "happy", "sad", "surprised")
# Disjoint identity ranges: no person appears in two databases (>= 100,000 identities each).
POOL_OFFSET = {"rafd": 0, "oulu": 100_000, "mmi": 200_000, "ckplus": 300_000,
               "affectnet": 1_000_000, "ffhq": 2_000_000}
DB_CODE = {name: i + 1 for i, name in enumerate(POOL_OFFSET)}
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 88]
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 6]
CHUNK = 250


def _code(table: dict[int, int], label: str) -> int:
    """Database code of a label name, from the shared code tables in ``emotions``."""
    return next(c for c, i in table.items() if ALL_LABELS[i] == label)


def _rng(seed: int, db: str, job: int) -> np.random.Generator:
    """Generator of one job of one database."""
    return np.random.default_rng([seed, DB_CODE[db], job])


def _people(seed: int, db: str, subjects: list[int], **kw: object) -> dict[str, np.ndarray]:
    """Identity table of a database's subjects, drawn from its own pool and population."""
    st = STYLES[db]
    idx = [POOL_OFFSET[db] + s for s in subjects]
    return sample_identities(seed, idx, **{"skin": st.skin, "age": st.age, **kw})


def _imwrite(path: Path, img: np.ndarray, params: list[int] | None = None) -> None:
    """Write an image (RGB or gray) through OpenCV, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = img[..., ::-1] if img.ndim == 3 else img
    if not cv2.imwrite(str(path), np.ascontiguousarray(out), params or []):
        raise OSError(f"OpenCV could not write {path}")


# ---------------------------------------------------------------- RaFD
RAFD_GROUPS = {"Caucasian": {"skin": (0.0, 0.3)}, "Moroccan": {"skin": (0.35, 0.65)},
               "Kid": {"skin": (0.0, 0.5), "age": (0.0, 0.1)}}
RAFD_ANGLES = {"045": -0.75, "090": 0.0, "135": 0.75}
RAFD_GAZES = {"left": -0.8, "frontal": 0.0, "right": 0.8}


def rafd_job(root: Path, seed: int, size: int, subject: int) -> list[str]:
    """One RaFD subject: 8 expressions x 3 gazes x 3 cameras, flat folder of JPEGs."""
    rng = _rng(seed, "rafd", subject)
    group = list(RAFD_GROUPS)[subject % 3]
    gender = "male" if rng.random() < 0.5 else "female"
    ids = _people(seed, "rafd", [subject], male=float(gender == "male"), **RAFD_GROUPS[group])
    n = len(ALL_LABELS) * 9
    labels = [lab for lab in ALL_LABELS for _ in range(9)]
    st = STYLES["rafd"]
    gains = np.repeat(ids["au_gain"], 8, 0)
    aus = np.repeat(expression_aus(list(ALL_LABELS), np.ones(8), gains, rng, st.variability), 9, 0)
    yaw = np.tile(np.repeat(list(RAFD_ANGLES.values()), 3), 8)
    gaze = np.zeros((n, 2), np.float32)
    gaze[:, 0] = np.tile(list(RAFD_GAZES.values()), 24)
    pose = np.stack([yaw, np.zeros(n), np.zeros(n)], 1).astype(np.float32)
    imgs = render_style(STYLES["rafd"], take(ids, np.zeros(n, int)), labels, np.ones(n), size, rng,
                        aus=aus, pose=pose, gaze=gaze)
    combos = [(a, g) for a in RAFD_ANGLES for g in RAFD_GAZES]
    for k, img in enumerate(imgs):
        angle, gz = combos[k % 9]
        _imwrite(root / f"Rafd{angle}_{subject:02d}_{group}_{gender}_{labels[k]}_{gz}.jpg", img, JPEG)
    return labels[::9]


# ---------------------------------------------------------------- Oulu-CASIA
OULU_FRAMES = 8


def _oulu_variants(vl: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Weak/Dark lightings and the near-infrared look (gray, flat) from the Strong VL frames."""
    gray = vl.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    ni = np.clip(0.55 * gray + 70, 0, 255)  # NIR: active illumination flattens shading
    out = {}
    for light, (gain, gamma) in {"Strong": (1.0, 1.0), "Weak": (0.6, 1.2), "Dark": (0.25, 1.6)}.items():
        out["VL", light] = np.clip(255 * gain * (vl / 255.0) ** gamma, 0, 255).astype(np.uint8)
        out["NI", light] = np.clip(255 * (0.4 + 0.6 * gain) * (ni / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return out


def oulu_job(root: Path, seed: int, size: int, subject: int) -> list[str]:
    """One Oulu-CASIA subject: six neutral-to-apex sequences under VL/NI x Strong/Weak/Dark."""
    rng = _rng(seed, "oulu", subject)
    ids = _people(seed, "oulu", [subject])
    labels = [lab for lab in SIX for _ in range(OULU_FRAMES)]
    ramp = np.tile(np.linspace(0, 1, OULU_FRAMES) ** 1.3, len(SIX))
    gain = np.repeat(ids["au_gain"], len(labels), 0)
    aus = expression_aus(labels[::OULU_FRAMES], np.ones(6), gain[:6], rng, STYLES["oulu"].variability)
    aus = np.repeat(aus, OULU_FRAMES, 0) * ramp[:, None]
    vl = render_style(STYLES["oulu"], take(ids, np.zeros(len(labels), int)), labels, ramp, size, rng,
                      aus=aus, **_steady(STYLES["oulu"], len(labels), size, rng))
    folder = {i: name for name, i in OULU_FOLDERS.items()}
    for (mod, light), imgs in _oulu_variants(vl).items():
        for k, img in enumerate(imgs):
            expr = folder[SIX.index(labels[k])]
            quality = JPEG if light == "Strong" else [cv2.IMWRITE_JPEG_QUALITY, 75]
            _imwrite(root / mod / light / f"P{subject:03d}" / expr / f"{k % OULU_FRAMES:03d}.jpeg", img, quality)
    return labels[::OULU_FRAMES]


# ---------------------------------------------------------------- MMI
MMI_PHASES = (3, 5, 4, 5, 3)  # neutral, onset, apex, offset, neutral frames


def _mmi_ramp() -> np.ndarray:
    """Intensity over an MMI clip: neutral -> onset -> apex -> offset -> neutral."""
    n0, on, ap, off, n1 = MMI_PHASES
    return np.concatenate([np.zeros(n0), np.linspace(0.2, 1, on), np.ones(ap),
                           np.linspace(1, 0.2, off), np.zeros(n1)])


def _mmi_xml(path: Path, subject: int, gender: str, code: int) -> None:
    """Clip metadata with the Emotion metatag the MMI adapter reads."""
    tags = {"Emotion": code, "Subject": subject, "Gender": gender, "Pose": "frontal", "Glasses": "no"}
    body = "".join(f'  <Metatag Name="{k}" Value="{v}"/>\n' for k, v in tags.items())
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<Metatags>\n{body}</Metatags>\n')


def _mmi_aucs(path: Path, aus: np.ndarray) -> None:
    """Onset/apex/offset markers (1-based frames) of every active action unit."""
    n0, on, ap, off, _ = MMI_PHASES
    marks = [(n0 + 1, 1), (n0 + on + 1, 2), (n0 + on + ap + off, 3)]
    body = ""
    for au, strength in zip(AUS, aus):
        if strength > 0.15:
            inner = "".join(f'    <Marker Frame="{fr}" Type="{t}"/>\n' for fr, t in marks)
            body += f'  <ActionUnit Number="{au}">\n{inner}  </ActionUnit>\n'
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<ActionUnits>\n{body}</ActionUnits>\n')


def mmi_job(root: Path, seed: int, size: int, subject: int) -> list[str]:
    """One MMI subject: one session per posed clip (MJPG .avi + metadata + AU markers)."""
    rng = _rng(seed, "mmi", subject)
    gender = "Male" if rng.random() < 0.5 else "Female"
    ids = _people(seed, "mmi", [subject], male=float(gender == "Male"))
    ramp = _mmi_ramp()
    for clip, label in enumerate(SIX, start=1):
        apex = expression_aus([label], np.ones(1), ids["au_gain"], rng, STYLES["mmi"].variability)
        nf = len(ramp)
        frames = render_style(STYLES["mmi"], take(ids, np.zeros(nf, int)), [label] * nf, ramp, size, rng,
                              aus=apex * ramp[:, None], **_steady(STYLES["mmi"], nf, size, rng))
        name = f"S{subject:03d}-{clip:03d}"
        sdir = root / "Sessions" / str((subject - 1) * len(SIX) + clip)
        sdir.mkdir(parents=True, exist_ok=True)
        _write_avi(sdir / f"{name}.avi", frames)
        _mmi_xml(sdir / f"{name}.xml", subject, gender, _code(MMI_CODES, label))
        _mmi_aucs(sdir / f"{name}-oao_aucs.xml", apex[0])
        (sdir / "session.xml").write_text(
            f'<?xml version="1.0" encoding="utf-8"?>\n<session sessionId="{sdir.name}">\n'
            f'  <track view="0">\n    <annotation filename="{name}.xml"/>\n'
            f'    <annotation filename="{name}-oao_aucs.xml"/>\n  </track>\n</session>\n')
    return list(SIX)


def _steady(style: Style, n: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One camera set-up held for a whole clip (pose, light, framing barely move)."""
    one = nuisance(style, 1, image_shape(style, size), rng)
    return {k: np.repeat(v, n, 0) for k, v in one.items()}


def _write_avi(path: Path, frames: np.ndarray) -> None:
    """Write RGB frames as an MJPG AVI (the MMI clips are AVI videos)."""
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    if not vw.isOpened():
        raise OSError(f"OpenCV could not open a video writer for {path}")
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()


# ---------------------------------------------------------------- CK+
CK_LABELLED = 0.55  # share of CK+ sequences that carry an emotion label file


def ckplus_subject_ids(seed: int, n: int) -> list[int]:
    """Non-contiguous CK+ subject numbers starting at S005."""
    steps = np.random.default_rng([seed, DB_CODE["ckplus"], 0]).integers(1, 4, n)
    return list(4 + np.cumsum(steps))


def ckplus_job(root: Path, seed: int, size: int, subject: int) -> list[str]:
    """One CK+ subject: several gray neutral-to-peak PNG sequences, some with an emotion file."""
    rng = _rng(seed, "ckplus", subject)
    ids = _people(seed, "ckplus", [subject])
    pool = list(SIX) + ["contemptuous"]
    labels = list(rng.choice(pool, int(rng.integers(4, 8)), replace=False))
    written = []
    for seq, label in enumerate(labels, start=1):
        nf = int(rng.integers(8, 15))
        ramp = np.linspace(0, 1, nf) ** 1.5
        apex = expression_aus([label], np.ones(1), ids["au_gain"], rng, STYLES["ckplus"].variability)
        imgs = render_style(STYLES["ckplus"], take(ids, np.zeros(nf, int)), [label] * nf, ramp, size, rng,
                            aus=apex * ramp[:, None], **_steady(STYLES["ckplus"], nf, size, rng))
        stem = f"S{subject:03d}/{seq:03d}"
        for k, img in enumerate(imgs, start=1):
            _imwrite(root / "cohn-kanade-images" / stem / f"S{subject:03d}_{seq:03d}_{k:08d}.png", img, PNG)
        edir = root / "Emotion" / stem
        edir.mkdir(parents=True, exist_ok=True)
        if rng.random() < CK_LABELLED:
            code = float(_code(CKPLUS_CODES, label))
            (edir / f"S{subject:03d}_{seq:03d}_{nf:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
            written.append(label)
    return written


# ---------------------------------------------------------------- AffectNet
AFFECTNET_MIX = {"neutral": 0.2, "happy": 0.3, "sad": 0.1, "surprised": 0.08, "fearful": 0.07,
                 "disgusted": 0.07, "angry": 0.12, "contemptuous": 0.06}
VALENCE_AROUSAL = {"neutral": (0.0, 0.0), "happy": (0.7, 0.4), "sad": (-0.6, -0.2),
                   "surprised": (0.2, 0.7), "fearful": (-0.6, 0.7), "disgusted": (-0.7, 0.3),
                   "angry": (-0.6, 0.6), "contemptuous": (-0.4, 0.2)}
AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                    "facial_landmarks,expression,valence,arousal")


def _landmarks(frame: np.ndarray) -> str:
    """Approximate 68 landmarks (jaw, brows, nose, eyes, mouth) from the face frame."""
    cx, cy, s = frame
    jaw = [(np.sin(t), 1.25 * np.cos(t) * 0.9) for t in np.linspace(-1.7, 1.7, 17)]
    brows = [(x, -0.38) for x in np.r_[np.linspace(-0.6, -0.12, 5), np.linspace(0.12, 0.6, 5)]]
    nose = [(0, y) for y in np.linspace(-0.15, 0.2, 4)] + [(x, 0.3) for x in np.linspace(-0.12, 0.12, 5)]
    eyes = [(c + 0.15 * np.cos(t), -0.16 + 0.06 * np.sin(t)) for c in (-0.38, 0.38)
            for t in np.linspace(np.pi, -np.pi, 6, endpoint=False)]
    mouth = [(0.34 * np.cos(t), 0.63 + 0.08 * np.sin(t)) for t in np.linspace(np.pi, -np.pi, 12, endpoint=False)]
    mouth += [(0.2 * np.cos(t), 0.63 + 0.03 * np.sin(t)) for t in np.linspace(np.pi, -np.pi, 8, endpoint=False)]
    pts = np.array(jaw + brows + nose + eyes + mouth) * s + [cx, cy]
    return ";".join(f"{p:.2f}" for p in pts.ravel())


def affectnet_job(root: Path, seed: int, size: int, chunk: int, total: int) -> list[str]:
    """One chunk of AffectNet-like in-the-wild images; returns CSV rows (label first)."""
    rng = _rng(seed, "affectnet", chunk)
    first, st = chunk * CHUNK, STYLES["affectnet"]
    index = list(range(first, min(first + CHUNK, total)))
    ids = _people(seed, "affectnet", index)
    labels = list(rng.choice(list(AFFECTNET_MIX), len(index), p=list(AFFECTNET_MIX.values())))
    intensity = rng.uniform(0.3, 1.0, len(index))
    nz = nuisance(st, len(index), image_shape(st, size), rng)
    imgs = render_style(st, ids, labels, intensity, size, rng, **nz)
    rows = []
    for i, img, label, fr in zip(index, imgs, labels, nz["frame"]):
        rel = f"{i // 500 + 1}/{hashlib.sha256(f'{seed}:{i}'.encode()).hexdigest()[:56]}.jpg"
        _imwrite(root / "Manually_Annotated_Images" / rel, img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
        cx, cy, s = fr
        box = [max(0, int(cx - 1.05 * s)), max(0, int(cy - 1.3 * s)), int(2.1 * s), int(2.6 * s)]
        val, aro = np.clip(np.array(VALENCE_AROUSAL[label]) * intensity[len(rows)] + rng.normal(0, 0.1, 2), -1, 1)
        rows.append(f"{rel},{box[0]},{box[1]},{box[2]},{box[3]},{_landmarks(fr)},"
                    f"{_code(AFFECTNET_CODES, label)},{val:.6f},{aro:.6f}")
    return rows


# ---------------------------------------------------------------- FFHQ
def ffhq_job(root: Path, seed: int, size: int, chunk: int, total: int) -> list[str]:
    """One chunk of FFHQ-like aligned thumbnails, each a new person, near-neutral."""
    rng = _rng(seed, "ffhq", chunk)
    index = list(range(chunk * CHUNK, min((chunk + 1) * CHUNK, total)))
    labels = list(rng.choice(list(ALL_LABELS), len(index)))
    imgs = render_style(STYLES["ffhq"], _people(seed, "ffhq", index), labels,
                        rng.uniform(0, 0.3, len(index)), size, rng)
    for i, img in zip(index, imgs):
        _imwrite(root / "thumbnails128x128" / f"{i // 1000 * 1000:05d}" / f"{i:05d}.png", img, PNG)
    return ["face"] * len(index)
