"""The paper's six Ekman classes and every database's own label codes.

Class indices 0-5 are what the CNN predicts (paper Table 1: Dense 6). Neutral and contempt are
kept as labels (6, 7) so adapters never lose them, but experiments exclude them by default.
Code tables: docs/datasets.md (from each database's README or loader code).
"""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgusted", "fearful", "happy", "sad", "surprised")
NEUTRAL, CONTEMPT = 6, 7
ALL_LABELS: tuple[str, ...] = EMOTIONS + ("neutral", "contemptuous")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(ALL_LABELS)}

# RaFD file names carry the label as a word: Rafd090_01_Caucasian_female_angry_frontal.jpg
RAFD_NAMES: dict[str, int] = {name: i for i, name in enumerate(ALL_LABELS)}

# Oulu-CASIA: the expression folder name is the label (six classes, no neutral).
OULU_FOLDERS: dict[str, int] = {
    "Anger": 0, "Disgust": 1, "Fear": 2, "Happiness": 3, "Sadness": 4, "Surprise": 5,
}

# MMI session metadata: <Metatag Name="Emotion" Value="1..6"/>.
MMI_CODES: dict[int, int] = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5}

# CK+ Emotion/*_emotion.txt: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
# 6 sadness, 7 surprise.
CKPLUS_CODES: dict[int, int] = {0: NEUTRAL, 1: 0, 2: CONTEMPT, 3: 1, 4: 2, 5: 3, 6: 4, 7: 5}

# AffectNet expression column: 0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear,
# 5 Disgust, 6 Anger, 7 Contempt; 8 None, 9 Uncertain, 10 No-Face are not expressions.
AFFECTNET_CODES: dict[int, int] = {0: NEUTRAL, 1: 3, 2: 4, 3: 5, 4: 2, 5: 1, 6: 0, 7: CONTEMPT}
AFFECTNET_NON_EXPRESSION: frozenset[int] = frozenset({8, 9, 10})

# FER2013 emotion column: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER2013_CODES: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: NEUTRAL}


def label_name(index: int) -> str:
    """Return the class name for a label index, raising on an index no database uses."""
    if not 0 <= index < len(ALL_LABELS):
        raise ValueError(f"label index {index} out of range 0..{len(ALL_LABELS) - 1}")
    return ALL_LABELS[index]
