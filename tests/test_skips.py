"""Nothing is left out silently: deleted folders, tiny, truncated and non-image files are counted by reason,
in images, and an unreadable sequence frame is replaced by the previous readable one (docs/datasets.md)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_datasets import make_ck_sequence, make_mmi_clip, make_oulu

from fer_utils import preprocess as P
from fer_utils.config import DataError, load_config
from fer_utils.datasets import Sample, SkipReport, read_ckplus, read_fer2013, read_folder, read_mmi, read_oulu
from fer_utils.datasets.io import MIN_SIDE, NO_EARLIER, REPLACED, TOO_SMALL, BadImage, FrameReader

MISSING_SEQUENCE = "missing expression folder (counted as the 3 frames it would give)"


def _cut(path: Path) -> Path:
    """Truncate an image file to its first half (a copy interrupted mid-file)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _config(tmp_path: Path, **data: Path):
    """The quick preset with the given data.<name> folders, a private cache and one worker."""
    return load_config("quick", {**{f"data.{k}": str(v) for k, v in data.items()},
                                 "data.cache": str(tmp_path / "cache"), "preprocess.workers": 1})


# ---------------------------------------------------------------- deleted folders (task: counted, in images)
def test_oulu_deleted_expression_folder_counts_the_frames_it_would_give(tmp_path, write_image):
    root = make_oulu(tmp_path / "oulu", write_image)
    shutil.rmtree(root / "VL" / "Strong" / "P002" / "Anger")
    report = SkipReport()
    samples = read_oulu(root, frames=3, report=report)
    assert len(samples) == 2 * 6 * 3 - 3 and report.counts == {MISSING_SEQUENCE: 3}
    assert report.examples[MISSING_SEQUENCE] == [str(root / "VL" / "Strong" / "P002" / "Anger")]


def test_oulu_subject_missing_from_one_lighting_is_counted(tmp_path, write_image):
    root = make_oulu(tmp_path / "oulu", write_image, lightings=("Strong", "Weak"))
    shutil.rmtree(root / "VL" / "Weak" / "P001")
    report = SkipReport()
    assert len(read_oulu(root, lightings=("Strong", "Weak"), report=report)) == 3 * 6 * 3
    reason = "missing subject folder, present under another modality or lighting (counted as 18 images)"
    assert report.counts == {reason: 18} and report.examples[reason][0].endswith("Weak/P001")


def test_short_and_empty_sequences_count_the_frames_they_lack(tmp_path, write_image):
    root = make_oulu(tmp_path / "oulu", write_image, subjects=(1,))
    for name in ("001.jpeg", "002.jpeg", "003.jpeg", "004.jpeg"):
        (root / "VL" / "Strong" / "P001" / "Fear" / name).unlink()
    for path in (root / "VL" / "Strong" / "P001" / "Sadness").iterdir():
        path.unlink()
    report = SkipReport()
    assert len(read_oulu(root, report=report)) == 4 * 3 + 1
    assert report.counts == {"sequence shorter than 3 frames (counts the frames it lacks)": 2 + 3}


def test_ckplus_labelled_sequence_without_its_image_folder_is_counted(tmp_path, write_image):
    root = tmp_path / "ck"
    make_ck_sequence(root, write_image, 5, 1, 6, "   5.0000000e+00\n")
    make_ck_sequence(root, write_image, 5, 2, 6, "   7.0000000e+00\n")
    shutil.rmtree(root / "cohn-kanade-images" / "S005" / "002")
    report = SkipReport()
    assert len(read_ckplus(root, report=report)) == 3
    reason = "missing image folder of a labelled sequence (counted as the 3 frames it would give)"
    assert report.counts == {reason: 3} and report.examples[reason][0].endswith("S005/002")


def test_mmi_session_without_its_video_counts_the_frames_it_would_give(tmp_path):
    root = tmp_path / "mmi"
    make_mmi_clip(root, 1, "S001-001", "2")
    (make_mmi_clip(root, 2, "S001-002", "3") / "S001-002.avi").unlink()
    report = SkipReport()
    assert len(read_mmi(root, frames=3, report=report)) == 3
    assert report.counts == {"session without its video or images (counted as the 3 frames it would give)": 3}


# ---------------------------------------------------------------- files that are not (usable) images
def test_non_image_files_in_image_folders_are_counted_with_an_example(tmp_path, write_image):
    oulu = make_oulu(tmp_path / "oulu", write_image, subjects=(1,))
    fear = oulu / "VL" / "Strong" / "P001" / "Fear"
    (fear / "Thumbs.db2").write_bytes(b"x")
    (fear / "notes.txt").write_text("metadata beside the data: ignored")
    report = SkipReport()
    assert len(read_oulu(oulu, report=report)) == 6 * 3
    assert report.counts == {"not an image file": 1}
    assert report.examples["not an image file"] == [str(fear / "Thumbs.db2")]
    folder = tmp_path / "folder"
    write_image(folder / "happy" / "a.png")
    (folder / "happy" / "b.gif").write_bytes(b"GIF89a")
    report = SkipReport()
    assert len(read_folder(folder, report=report)) == 1
    assert report.counts == {"not an image file": 1} and report.examples["not an image file"][0].endswith("b.gif")


def test_tiny_image_is_refused_with_its_own_reason(tmp_path, write_image):
    read = FrameReader()
    tiny, edge = write_image(tmp_path / "tiny.png", shape=(1, 1)), write_image(tmp_path / "edge.png", (24, 40))
    with pytest.raises(BadImage, match=r"tiny.png \(1x1 px\): image smaller than 24 px") as caught:
        read(Sample(str(tiny), "folder", "t", 0))
    assert caught.value.reason == TOO_SMALL and MIN_SIDE == 24
    assert read(Sample(str(edge), "folder", "e", 0)).shape == (24, 40)


def test_unusable_images_are_counted_by_specific_reason(tmp_path, write_image):
    root = tmp_path / "folder"
    for k in range(4):
        write_image(root / "happy" / f"{k}.jpg", seed=k)
    write_image(root / "happy" / "tiny.png", shape=(1, 1))
    _cut(root / "happy" / "0.jpg")
    (root / "happy" / "1.jpg").write_bytes(b"not an image at all")
    faces = P.load_database(_config(tmp_path), "folder", root=root)
    assert len(faces) == 2 and set(faces.labels) == {3}
    assert faces.report.counts == {TOO_SMALL: 1, "truncated JPEG (no end-of-image marker)": 1,
                                   "not an image OpenCV can decode": 1}
    assert "tiny.png (1x1 px)" in faces.report.examples[TOO_SMALL][0]
    assert "1.jpg: not an image OpenCV can decode" in faces.report.examples["not an image OpenCV can decode"][0]


# ---------------------------------------------------------------- unreadable sequence frames
def test_unreadable_frames_are_replaced_by_the_previous_readable_one(tmp_path, write_image):
    root = make_oulu(tmp_path / "oulu", write_image, subjects=(1,))
    anger = root / "VL" / "Strong" / "P001" / "Anger"
    _cut(anger / "004.jpeg")  # the apex frame: 003 stands in
    _cut(anger / "002.jpeg")  # the window's first frame: 001, outside the window, stands in
    (root / "VL" / "Strong" / "P001" / "Fear" / "004.jpeg").write_bytes(b"")
    faces = P.load_database(_config(tmp_path, oulu=root), "oulu")
    assert len(faces) == 6 * 3 and faces.report.counts == {REPLACED: 3}
    assert any("004.jpeg: truncated JPEG" in e for e in faces.report.examples[REPLACED])
    used = [Path(r["path"]).name for r in faces.manifest if "/Anger/" in r["path"]]
    assert used == ["001.jpeg", "003.jpeg", "003.jpeg"]
    rows = [i for i, r in enumerate(faces.manifest) if "/Anger/" in r["path"]]
    assert np.array_equal(faces.images[rows[1]], faces.images[rows[2]])
    assert P.load_database(_config(tmp_path, oulu=root), "oulu").report.counts == {REPLACED: 3}  # cached too


def test_unreadable_frame_without_a_readable_earlier_one_is_counted(tmp_path, write_image):
    root = tmp_path / "ck"
    make_ck_sequence(root, write_image, 5, 1, 3, "   5.0000000e+00\n")
    _cut(root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000001.png")
    faces = P.load_database(_config(tmp_path, ckplus=root), "ckplus")
    assert len(faces) == 2 and faces.report.counts == {NO_EARLIER: 1}
    assert "S005_001_00000001.png: truncated PNG" in faces.report.examples[NO_EARLIER][0]


# ---------------------------------------------------------------- FER2013: the CSV or its folder
def test_fer2013_accepts_the_csv_or_the_folder_holding_it(tmp_path):
    pixels = " ".join(["128"] * 2304)
    csv = tmp_path / "kaggle" / "fer2013.csv"
    csv.parent.mkdir()
    csv.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n4,{pixels},PrivateTest\n")
    by_file, by_folder = read_fer2013(csv), read_fer2013(csv.parent)
    assert [(s.path, s.label) for s in by_file] == [(s.path, s.label) for s in by_folder] == [(str(csv), 3),
                                                                                            (str(csv), 4)]
    with pytest.raises(DataError, match=r"fer2013.csv.*point data.fer2013"):
        read_fer2013(tmp_path)
    with pytest.raises(DataError, match="data.fer2013"):
        read_fer2013(tmp_path / "nope.csv")


def test_editing_a_stand_in_frame_invalidates_the_cache(tmp_path, write_image):
    """The cached crop of an unreadable frame is its stand-in's: editing only the stand-in must crop again."""
    root = make_oulu(tmp_path / "oulu", write_image, subjects=(1,))
    anger = root / "VL" / "Strong" / "P001" / "Anger"
    _cut(anger / "002.jpeg")  # the window's first frame: 001, outside the window, stands in
    first = P.load_database(_config(tmp_path, oulu=root), "oulu")
    write_image(anger / "001.jpeg", seed=99)  # the stand-in changes, the window's own files do not
    again = P.load_database(_config(tmp_path, oulu=root), "oulu")
    assert not again.meta["cached"] and not np.array_equal(first.images, again.images)
