"""Every adapter on tiny copies of the real layouts (docs/datasets.md), good and bad."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_utils.config import DataError, load_config
from fer_utils.datasets import (
    ADAPTERS,
    SkipReport,
    read_affectnet,
    read_ckplus,
    read_database,
    read_fer2013,
    read_ffhq,
    read_folder,
    read_mmi,
    read_oulu,
    read_rafd,
)
from fer_utils.datasets.io import BadImage, FrameReader, read_image
from fer_utils.datasets.mmi import clip_frames
from fer_utils.emotions import CONTEMPT, NEUTRAL

RAFD_WORDS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral", "contemptuous")


# ---------------------------------------------------------------- RaFD
def make_rafd(root: Path, write_image, subjects=(1, 2), cameras=("045", "090")) -> Path:
    """Flat folder of Rafd{angle}_{id}_{ethnicity}_{gender}_{emotion}_{gaze}.jpg."""
    for s in subjects:
        for angle in cameras:
            for word in RAFD_WORDS:
                for gaze in ("left", "frontal"):
                    write_image(root / f"Rafd{angle}_{s:02d}_Caucasian_female_{word}_{gaze}.jpg", seed=s)
    return root


def test_rafd_reads_labels_subjects_and_frontal_camera(tmp_path, write_image):
    root = make_rafd(tmp_path / "rafd", write_image)
    (root / "WORLD_MANIFEST.json").write_text("{}")  # metadata beside the data is ignored
    report = SkipReport("rafd")
    samples = read_rafd(root, report=report)
    assert len(samples) == 2 * 6 * 2
    assert {s.subject for s in samples} == {"01", "02"}
    assert all(s.extra["camera"] == "090" and 0 <= s.label < 6 for s in samples)
    assert report.counts == {"excluded class neutral": 4, "excluded class contemptuous": 4}
    kept = read_rafd(root, cameras=("045", "090"), include_neutral=True, include_contempt=True)
    assert {s.label for s in kept} == set(range(8)) and len(kept) == 2 * 2 * 8 * 2


def test_rafd_counts_bad_files(tmp_path, write_image):
    root = make_rafd(tmp_path / "rafd", write_image, subjects=(1,), cameras=("090",))
    (root / "Rafd090_03_Kid_male_happy_frontal.jpg").write_bytes(b"")
    (root / "Rafd090_04_Kid_male_bored_frontal.jpg").write_bytes(b"x")
    (root / "Rafd090_05_oops.jpg").write_bytes(b"x")
    (root / "notes.docx").write_bytes(b"x")
    report = SkipReport("rafd")
    assert len(read_rafd(root, report=report)) == 12
    assert report.counts["empty (zero-byte) file"] == 1
    assert report.counts["unknown RaFD emotion 'bored'"] == 1
    assert report.counts["not an image file"] == 1
    assert sum(n for r, n in report.counts.items() if r.startswith("file name not")) == 1
    assert "skipped:" in report.summary() and "Rafd090_03" in report.summary()


def test_rafd_missing_root_and_wrong_folder(tmp_path, write_image):
    with pytest.raises(DataError, match="data.rafd"):
        read_rafd(tmp_path / "nope")
    write_image(tmp_path / "other" / "face.jpg")
    with pytest.raises(DataError, match=r"expected Rafd\*\.jpg.*point data.rafd"):
        read_rafd(tmp_path / "other")
    make_rafd(tmp_path / "side", write_image, subjects=(1,), cameras=("045",))
    with pytest.raises(DataError, match="no usable samples"):
        read_rafd(tmp_path / "side")  # only a profile camera: an empty dataset is an error


# ---------------------------------------------------------------- Oulu-CASIA
def make_oulu(root: Path, write_image, subjects=(1, 2), frames=5, lightings=("Strong",)) -> Path:
    """{VL,NI}/{lighting}/P###/{Anger,...}/NNN.jpeg."""
    for light in lightings:
        for s in subjects:
            for expr in ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"):
                for k in range(frames):
                    write_image(root / "VL" / light / f"P{s:03d}" / expr / f"{k:03d}.jpeg", seed=k)
    return root


@pytest.mark.parametrize("level", ["", "OriginalImg"])
def test_oulu_keeps_last_frames_with_or_without_originalimg(tmp_path, write_image, level):
    root = tmp_path / "oulu"
    make_oulu(root / level if level else root, write_image)
    samples = read_oulu(root, frames=3)
    assert len(samples) == 2 * 6 * 3
    assert {Path(s.path).name for s in samples} == {"002.jpeg", "003.jpeg", "004.jpeg"}
    assert {s.subject for s in samples} == {"P001", "P002"} and {s.label for s in samples} == set(range(6))


def test_oulu_bad_folders_and_missing_lighting(tmp_path, write_image):
    root = make_oulu(tmp_path / "oulu", write_image, subjects=(1,))
    write_image(root / "VL" / "Strong" / "P001" / "Boredom" / "000.jpeg")
    write_image(root / "VL" / "Strong" / "extra" / "Anger" / "000.jpeg")
    (root / "VL" / "Strong" / "P001" / "Anger" / "009.jpeg").write_bytes(b"")
    report = SkipReport()
    samples = read_oulu(root, report=report)  # the empty last frame is listed: reading replaces it (test_skips)
    assert len(samples) == 18 and samples[2].path.endswith("Anger/009.jpeg")
    assert report.counts == {"unknown expression folder 'Boredom'": 3,
                             "folder not named P### (counted as a subject: 18 images)": 18}
    with pytest.raises(DataError, match="Dark"):
        read_oulu(root, lightings=("Dark",))
    with pytest.raises(DataError, match="VL,NI"):
        read_oulu(tmp_path)


# ---------------------------------------------------------------- MMI
def write_avi(path: Path, n: int) -> Path:
    """MJPG video of n frames (frame k has brightness 10 k)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for k in range(n):
        vw.write(np.full((24, 32, 3), 10 * k, np.uint8))
    vw.release()
    return path


def make_mmi_clip(root: Path, session: int, name: str, emotion: str | None, view: str = "0", n: int = 12,
                  markers: str | None = None) -> Path:
    """One session: S###-###.avi, S###-###.xml, session.xml, optional -oao_aucs.xml."""
    folder = root / "Sessions" / str(session)
    write_avi(folder / f"{name}.avi", n)
    tag = f'<Metatag Name="Emotion" Value="{emotion}"/>' if emotion is not None else ""
    (folder / f"{name}.xml").write_text(f'<Metatags><Metatag Name="Subject" Value="1"/>{tag}</Metatags>')
    (folder / "session.xml").write_text(f'<session><track view="{view}"><annotation filename="{name}.xml"/>'
                                        "</track></session>")
    if markers is not None:
        (folder / f"{name}-oao_aucs.xml").write_text(f'<ActionUnits><ActionUnit Number="12">{markers}'
                                                     "</ActionUnit></ActionUnits>")
    return folder


def test_mmi_apex_window_from_markers_else_middle_third(tmp_path):
    root = tmp_path / "mmi"
    typed = '<Marker Frame="3" Type="1"/><Marker Frame="6" Type="2"/><Marker Frame="10" Type="3"/>'
    make_mmi_clip(root, 1, "S001-001", "4", markers=typed)
    make_mmi_clip(root, 2, "S001-002", "1", markers='<Marker Frame="2"/><Marker Frame="8"/><Marker Frame="11"/>')
    make_mmi_clip(root, 3, "S002-001", "6")
    samples = read_mmi(root, frames=3)
    by_clip: dict[str, list[int]] = {}
    for s in samples:
        by_clip.setdefault(Path(s.path).stem, []).append(s.frame)
    assert by_clip == {"S001-001": [5, 6, 7], "S001-002": [7, 8, 9], "S002-001": [4, 6, 7]}
    assert {(s.subject, s.label) for s in samples} == {("S001", 3), ("S001", 0), ("S002", 5)}
    reader = FrameReader()
    assert [int(reader(s).mean()) for s in samples[:3]] == pytest.approx([50, 60, 70], abs=3)


def test_mmi_clip_frames_stay_inside_the_clip():
    assert clip_frames(10, 3, 9) == [7, 8, 9]
    assert clip_frames(2, 3, None) == [0]
    assert clip_frames(30, 3, None) == [10, 14, 19]


def test_mmi_counts_skipped_clips(tmp_path, write_image):
    root = tmp_path / "mmi"
    make_mmi_clip(root, 1, "S001-001", "2")
    make_mmi_clip(root, 2, "S001-002", "7")
    make_mmi_clip(root, 3, "S001-003", None)
    make_mmi_clip(root, 4, "S001-004", "3", view="1")
    make_mmi_clip(root, 5, "S001-005", "x")
    folder = make_mmi_clip(root, 6, "S002-001", "5")
    (folder / "S002-001.xml").write_text("<Metatags><Metatag")  # truncated XML
    still = root / "Sessions" / "7"
    write_image(still / "S003-001.png")
    (still / "S003-001.xml").write_text('<Metatags><Metatag Name="Emotion" Value="6"/></Metatags>')
    (still / "session.xml").write_text('<session><track view="2"/></session>')
    report = SkipReport("mmi")
    samples = read_mmi(root, report=report)
    assert {(Path(s.path).name, s.label) for s in samples} == {("S001-001.avi", 1), ("S003-001.png", 5)}
    assert report.counts == {"Emotion code 7 not a basic emotion (1-6)": 3, "no Emotion metatag": 3,  # video: 3 frames
                             "camera view 1 not kept": 3, "unparseable metadata XML": 6}
    with pytest.raises(DataError, match="Sessions"):
        read_mmi(tmp_path)


def test_video_frame_out_of_range_is_a_bad_image(tmp_path):
    from fer_utils.datasets import Sample

    path = write_avi(tmp_path / "S001-001.avi", 4)
    with pytest.raises(BadImage, match="frame 9"):
        FrameReader()(Sample(str(path), "mmi", "S001", 0, frame=9))


# ---------------------------------------------------------------- CK+
def make_ck_sequence(root: Path, write_image, subject: int, seq: int, frames: int, code: str | None,
                     images: str = "cohn-kanade-images", labels: str = "Emotion") -> None:
    """cohn-kanade-images/S###/###/S###_###_########.png and the peak frame's emotion file."""
    stem = f"S{subject:03d}/{seq:03d}"
    for k in range(1, frames + 1):
        write_image(root / images / stem / f"S{subject:03d}_{seq:03d}_{k:08d}.png", seed=k)
    (root / labels / stem).mkdir(parents=True, exist_ok=True)
    if code is not None:
        (root / labels / stem / f"S{subject:03d}_{seq:03d}_{frames:08d}_emotion.txt").write_text(code)


@pytest.mark.parametrize("images,labels", [("cohn-kanade-images", "Emotion"),
                                           ("extended-cohn-kanade-images", "Emotion_labels/Emotion")])
def test_ckplus_last_frames_of_labelled_sequences(tmp_path, write_image, images, labels):
    root = tmp_path / "ck"
    make_ck_sequence(root, write_image, 5, 1, 11, "   3.0000000e+00\n", images, labels)
    make_ck_sequence(root, write_image, 5, 2, 6, None, images, labels)
    make_ck_sequence(root, write_image, 10, 1, 8, "   7.0000000e+00\n", images, labels)
    report = SkipReport()
    samples = read_ckplus(root, frames=3, report=report)
    assert [Path(s.path).name for s in samples[:3]] == [f"S005_001_{k:08d}.png" for k in (9, 10, 11)]
    assert [s.label for s in samples] == [1, 1, 1, 5, 5, 5] and samples[-1].subject == "S010"
    assert report.counts == {"unlabelled sequence (no emotion file)": 3}  # counted in images: 3 frames


def test_ckplus_bad_label_files(tmp_path, write_image):
    root = tmp_path / "ck"
    make_ck_sequence(root, write_image, 5, 1, 4, "   5.0000000e+00\n")
    make_ck_sequence(root, write_image, 5, 2, 4, "happy")
    make_ck_sequence(root, write_image, 5, 3, 4, "   9.0000000e+00\n")
    make_ck_sequence(root, write_image, 5, 4, 4, "   0.0000000e+00\n")
    make_ck_sequence(root, write_image, 5, 5, 4, "   2.0000000e+00\n")
    report = SkipReport()
    assert len(read_ckplus(root, report=report)) == 3
    assert report.counts == {"unparseable emotion file": 3, "unknown CK+ emotion code 9": 3,
                             "excluded class neutral": 3, "excluded class contemptuous": 3}
    assert "S005_002_00000004_emotion.txt" in report.examples["unparseable emotion file"][0]
    both = read_ckplus(root, include_neutral=True, include_contempt=True)
    assert {s.label for s in both} == {3, NEUTRAL, CONTEMPT}
    with pytest.raises(DataError, match="cohn-kanade-images"):
        read_ckplus(tmp_path)


# ---------------------------------------------------------------- AffectNet
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def test_affectnet_rows_codes_boxes_and_skips(tmp_path, write_image):
    root = tmp_path / "affectnet"
    for name in ("a", "b", "c", "d", "e"):
        write_image(root / "Manually_Annotated_Images" / "1" / f"{name}.jpg")
    (root / "Manually_Annotated_Images" / "1" / "z.jpg").write_bytes(b"")
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    rows = ["1/a.jpg,2,3,20,25,1;2,1,0.5,0.2", "1/b.jpg,2,3,20,25,1;2,8,-2,-2", "1/c.jpg,2,3,20,25,1;2,11,0,0",
            "1/gone.jpg,2,3,20,25,1;2,6,0,0", "1/d.jpg,x,3,20,25,1;2,6,0,0", "1/e.jpg,0,0,32,40,1;2,0,0,0",
            "1/z.jpg,0,0,32,40,1;2,2,0,0"]
    (lists / "training.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (lists / "validation.csv").write_text("1/e.jpg,1,1,30,30,1;2,5,-0.5,0.4\n")  # a headerless copy
    report = SkipReport()
    samples = read_affectnet(root, report=report)
    assert [(Path(s.path).name, s.label, s.box, s.extra["split"]) for s in samples] == [
        ("a.jpg", 3, (2, 3, 20, 25), "train"), ("e.jpg", 1, (1, 1, 30, 30), "val")]
    assert samples[0].extra["valence"] == 0.5
    assert report.counts == {"not an expression (8 None)": 1, "unknown AffectNet expression code 11": 1,
                             "image listed in the CSV is missing": 1, "unparseable CSV row": 1,
                             "excluded class neutral": 1, "empty (zero-byte) file": 1}
    assert report.examples["unparseable CSV row"] == [f"{lists / 'training.csv'}:6"]


def test_affectnet_csvs_at_root_and_missing_list(tmp_path, write_image):
    root = tmp_path / "affectnet"
    write_image(root / "Manually_Annotated_Images" / "1" / "a.jpg")
    (root / "training.csv").write_text(HEADER + "\n1/a.jpg,0,0,32,40,1;2,3,0,0\n")
    assert [s.label for s in read_affectnet(root, lists=("training",))] == [5]
    with pytest.raises(DataError, match="validation.csv"):
        read_affectnet(root)


# ---------------------------------------------------------------- FFHQ, FER2013, class folders
def test_ffhq_unlabelled_tree(tmp_path, write_image):
    root = tmp_path / "ffhq"
    for i in range(3):
        write_image(root / "thumbnails128x128" / "00000" / f"{i:05d}.png")
    (root / "thumbnails128x128" / "LICENSE.txt").write_text("cc")
    samples = read_ffhq(root)
    assert [(s.subject, s.label) for s in samples] == [("00000", None), ("00001", None), ("00002", None)]
    with pytest.raises(DataError, match="thumbnails128x128"):
        read_ffhq(tmp_path)


def test_fer2013_rows(tmp_path):
    good = " ".join(["128"] * 2304)
    lines = ["emotion,pixels,Usage", f"3,{good},Training", f"9,{good},Training", f"6,{good},PublicTest",
             "2,1 2 3,PrivateTest", f"x,{good},Training", f"5,{good},PrivateTest"]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    report = SkipReport()
    samples = read_fer2013(tmp_path, report=report)
    assert [(s.frame, s.label, s.extra["split"]) for s in samples] == [(0, 3, "train"), (5, 5, "test")]
    assert report.counts == {"unknown FER2013 emotion code 9": 1, "excluded class neutral": 1,
                             "pixels are not 2,304 values (48x48)": 1, "unparseable emotion value": 1}
    img = FrameReader()(samples[0])
    assert img.shape == (48, 48) and img.dtype == np.uint8 and img.max() == 128


def test_folder_layouts_with_and_without_splits(tmp_path, write_image):
    flat = tmp_path / "flat"
    write_image(flat / "angry" / "id001" / "0.png")
    write_image(flat / "Happy" / "x.png")
    write_image(flat / "bored" / "y.png")
    write_image(flat / "neutral" / "n.png")
    report = SkipReport()
    samples = read_folder(flat, report=report)
    assert sorted((s.label, s.subject) for s in samples) == [(0, "id001"), (3, "x")]
    assert report.counts == {"unknown class folder 'bored'": 1, "excluded class neutral": 1}
    split = tmp_path / "generated"
    for part in ("train", "test"):
        write_image(split / part / "sad" / "g0001" / "0.png")
    samples = read_folder(split, database="generated")
    assert sorted((s.extra["split"], s.label, s.database) for s in samples) == [
        ("test", 4, "generated"), ("train", 4, "generated")]
    with pytest.raises(DataError, match="class folders"):
        read_folder(tmp_path / "flat" / "angry" / "id001")


# ---------------------------------------------------------------- decoding and the registry
def test_truncated_and_non_image_files_raise_naming_the_file(tmp_path, write_image):
    for suffix in (".jpg", ".png"):
        data = write_image(tmp_path / f"ok{suffix}").read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(BadImage, match=f"cut{suffix}: truncated"):
            read_image(cut)
    (tmp_path / "fake.jpg").write_bytes(b"not an image at all")
    with pytest.raises(BadImage, match="fake.jpg: not an image"):
        read_image(tmp_path / "fake.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadImage, match="empty"):
        read_image(tmp_path / "empty.png")


def test_registry_passes_config_choices(tmp_path, write_image):
    cfg = load_config("quick", {"preprocess.rafd_cameras": ["045"]})
    root = make_rafd(tmp_path / "rafd", write_image, subjects=(1,))
    assert {s.extra["camera"] for s in read_database("rafd", root, cfg)} == {"045"}
    assert len(read_database("rafd", root, cfg, include_neutral=True)) == 16
    assert {"rafd", "oulu", "mmi", "ckplus", "affectnet", "ffhq", "fer2013", "folder"} <= set(ADAPTERS)
    with pytest.raises(KeyError, match="known"):
        read_database("jaffe", root, cfg)
