"""The embedded face world: faces Haar can find, real layouts, determinism, resumability."""
import dataclasses
import hashlib
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from fer_utils.config import load_config
from fer_utils.emotions import AFFECTNET_CODES, ALL_LABELS, CKPLUS_CODES, MMI_CODES, OULU_FOLDERS
from fer_utils.facegen import STYLES, render_faces, render_style, sample_identities, write_world
from fer_utils.facegen.expressions import AUS

TINY = {"world.rafd_subjects": 2, "world.oulu_subjects": 2, "world.mmi_subjects": 1,
        "world.ckplus_subjects": 3, "world.affectnet_images": 60, "world.ffhq_images": 20}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A very small world, written once for the layout tests."""
    out = tmp_path_factory.mktemp("world")
    cfg = load_config("quick", TINY)
    return cfg, out, write_world(cfg, out=out)


def _cascade():
    casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    assert not casc.empty()
    return casc


@pytest.mark.parametrize("style", sorted(STYLES))
def test_haar_finds_frontal_faces_of_every_style(style):
    st = dataclasses.replace(STYLES[style], occlusion=0.0)
    rng = np.random.default_rng(11)
    n = 100
    ids = sample_identities(3, range(50_000, 50_000 + n), skin=st.skin, age=st.age)
    labels = list(rng.choice(list(ALL_LABELS), n))
    imgs = render_style(st, ids, labels, rng.uniform(0, 1, n), 128, rng, pose=np.zeros((n, 3), np.float32))
    gray = [x if x.ndim == 2 else cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in imgs]
    casc = _cascade()
    rate = np.mean([len(casc.detectMultiScale(g)) > 0 for g in gray])
    assert rate >= 0.95, f"{style}: Haar found {rate:.2%} of frontal faces"


def test_identities_are_distinct_and_stable():
    ids = sample_identities(0, range(200))
    again = sample_identities(0, [7, 150])
    assert all(np.array_equal(again[k], ids[k][[7, 150]]) for k in ids)
    n = 200
    light = np.tile([0, -0.3, 1, 0.4, 0.6], (n, 1)).astype(np.float32)
    img = render_faces(ids, np.zeros((n, len(AUS)), np.float32), np.zeros((n, 3), np.float32),
                       light, (48, 48), color=False).reshape(n, -1).astype(np.float32)
    d = ((img[:, None] - img[None]) ** 2).mean(-1) ** 0.5
    d[np.diag_indices(n)] = np.inf
    assert d.min() > 2.0  # gray levels RMS: no two people render alike


def test_same_person_across_lighting_is_closer_than_other_people():
    ids = sample_identities(0, [1, 1, 2])
    light = np.array([[0.3, -0.3, 1, 0.4, 0.6], [-0.3, -0.3, 1, 0.4, 0.6], [0.3, -0.3, 1, 0.4, 0.6]], np.float32)
    img = render_faces(ids, np.zeros((3, len(AUS)), np.float32), np.zeros((3, 3), np.float32), light,
                       (64, 64), color=False).astype(np.float32)
    assert np.abs(img[0] - img[1]).mean() < np.abs(img[0] - img[2]).mean()


def _hard_faces(n: int = 40) -> tuple:
    """Faces centred, off-centre, cut by the frame edge and wholly off-frame, rotated, small and large."""
    rng = np.random.default_rng(4)
    ids = sample_identities(9, range(n))
    aus = rng.uniform(0, 1, (n, len(AUS))).astype(np.float32)
    pose = rng.normal(0, 0.35, (n, 3)).astype(np.float32)
    light = np.tile([0.3, -0.3, 1, 0.4, 0.6], (n, 1)).astype(np.float32)
    frame = np.c_[rng.uniform(-40, 140, n), rng.uniform(-40, 140, n), rng.uniform(8, 70, n)].astype(np.float32)
    frame[0] = [-300, -300, 30]  # nothing of this face is in the frame
    return ids, aus, pose, light, frame


def _require_compiled() -> None:
    """Fail, rather than compare eager with eager, where the compiled renderer is missing."""
    from fer_utils.facegen import render

    assert render._compiled() is not None, "the compiled renderer could not be built or loaded (see the warning)"


@pytest.mark.parametrize("color", [True, False])
def test_compiled_renderer_draws_what_the_eager_one_does(color):
    """The compiled loop fuses the renderer; pixels may differ by rounding only (measured: 1 in 10^6)."""
    _require_compiled()
    ids, aus, pose, light, frame = _hard_faces()
    args = (ids, aus, pose, light, (96, 112), color, frame)
    compiled = render_faces(*args)
    eager = render_faces(*args, compiled=False)
    diff = np.abs(compiled.astype(int) - eager.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    assert (eager[0] == eager[0][:, :1]).all()  # the off-frame face left the background (row ramp) alone


def test_one_compiled_renderer_serves_every_batch_and_frame_size():
    _require_compiled()
    ids, aus, pose, light, frame = _hard_faces(70)
    for n, size in ((1, (64, 64)), (2, (128, 99)), (70, (96, 112)), (3, (4, 5))):
        args = ({k: v[:n] for k, v in ids.items()}, aus[:n], pose[:n], light[:n], size, True, frame[:n])
        diff = np.abs(render_faces(*args).astype(int) - render_faces(*args, compiled=False).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-4, (n, size)


def test_compiled_renderer_reads_identity_fields_by_name_not_by_the_dicts_order():
    """The compiled package takes its inputs by position: a caller's dict in another order must not swap fields."""
    _require_compiled()
    ids, aus, pose, light, frame = _hard_faces(4)
    shuffled = dict(reversed(list(ids.items())))
    args = (aus, pose, light, (48, 48), True, frame)
    assert np.array_equal(render_faces(shuffled, *args), render_faces(ids, *args))


@pytest.fixture
def render_module():
    """fer_utils.facegen.render with its compiled renderer forgotten before and after: each use is a new process."""
    from fer_utils.facegen import render

    render._compiled.cache_clear()
    yield render
    render._compiled.cache_clear()


def test_compiled_renderer_is_built_once_per_machine_and_code(monkeypatch, tmp_path, render_module):
    render = render_module
    built = []
    monkeypatch.setattr(render, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(render, "_build_package", lambda path, args: built.append(path) or path.write_bytes(b"x"))
    monkeypatch.setattr(render.torch._inductor, "aoti_load_package", lambda path: render._render)
    for _ in range(2):
        render._compiled.cache_clear()
        assert render._compiled() is render._render
    assert built == [render._package_path()] and built[0].parent == tmp_path  # the second process loaded it
    monkeypatch.setattr(render, "__file__", str(tmp_path / "edited_render.py"))
    (tmp_path / "edited_render.py").write_text("changed")
    assert render._package_path() != built[0]  # edited render code is never served by an old build
    edited = render._package_path()
    monkeypatch.setattr(render.torch.backends.cpu, "get_cpu_capability", lambda: "another CPU")
    assert render._package_path() != edited  # nor is a build for another kind of CPU


def test_renderer_goes_eager_with_a_warning_when_compiling_fails(monkeypatch, tmp_path, render_module):
    import torch

    render = render_module
    builds = []

    def broken(path, args):  # what a machine without a working C++ compiler raises
        builds.append(path)
        raise torch._inductor.exc.InvalidCxxCompiler()

    monkeypatch.setattr(render, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(render, "_build_package", broken)
    ids, aus, pose, light, frame = _hard_faces(3)
    with pytest.warns(UserWarning, match="rendering eagerly.*InvalidCxxCompiler"):
        img = render_faces(ids, aus, pose, light, (32, 32), True, frame)
    assert img.shape == (3, 32, 32, 3)
    assert render._renderer(torch.device("cpu"), True) is render._EAGER  # and stays eager, without retrying
    render._compiled.cache_clear()  # a later process: told why and how to retry, no second ~50 s build
    failed = render._package_path().with_suffix(".failed")
    with pytest.warns(UserWarning, match=f"InvalidCxxCompiler.*delete {re.escape(str(failed))}"):
        assert render._compiled() is None
    assert builds == [render._package_path()]
    failed.unlink()
    render._compiled.cache_clear()
    with pytest.warns(UserWarning, match="InvalidCxxCompiler"):
        render._compiled()
    assert len(builds) == 2  # deleting the note retries


def test_a_failure_that_may_not_recur_leaves_no_note(monkeypatch, tmp_path, render_module):
    render = render_module

    def stopped(path, args):  # a full disk, or the loading child stopped from outside (an InterruptedError)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(render, "_build_package", stopped)
    with pytest.warns(UserWarning, match="No space left"):
        assert render._compiled() is None
    assert not render._package_path().with_suffix(".failed").exists()


def test_the_fallback_warning_names_the_callers_line(monkeypatch, tmp_path, render_module):
    """Reached from render_faces or from compile_renderer, the warning points at the line that called them."""
    render = render_module

    def stopped(path, args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(render, "_build_package", stopped)
    ids, aus, pose, light, frame = _hard_faces(2)
    with pytest.warns(UserWarning, match="No space left") as from_compile:
        render.compile_renderer()
    render._compiled.cache_clear()
    with pytest.warns(UserWarning, match="No space left") as from_render:
        render_faces(ids, aus, pose, light, (16, 16), True, frame)
    assert [w.filename for w in (*from_compile, *from_render)] == [__file__, __file__]


def test_a_note_never_hides_a_package_that_exists(monkeypatch, tmp_path, render_module):
    render = render_module
    monkeypatch.setattr(render, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(render.torch._inductor, "aoti_load_package", lambda path: render._render)
    render._package_path().write_bytes(b"built by another process")
    render._package_path().with_suffix(".failed").write_text("RuntimeError: an earlier failure\n")
    assert render._compiled() is render._render


def test_a_build_whose_loader_crashes_is_refused_without_crashing_the_caller(monkeypatch, tmp_path):
    from fer_utils.facegen import render

    monkeypatch.setattr(render, "_CHILD_CHECK", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(RuntimeError, match="killed by signal 11"):
        render._check_build(tmp_path / "package.pt2")
    monkeypatch.setattr(render, "_CHILD_CHECK", "import sys; sys.exit('no such package: ' + sys.argv[1])")
    with pytest.raises(RuntimeError, match="exit status 1 no such package: .*package.pt2"):
        render._check_build(tmp_path / "package.pt2")
    monkeypatch.setattr(render, "_CHILD_CHECK", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    with pytest.raises(InterruptedError, match="stopped by signal 15"):  # no verdict on the build: no note
        render._check_build(tmp_path / "package.pt2")


def test_a_build_that_draws_differently_from_the_eager_renderer_is_refused():
    from fer_utils.facegen import render

    render._draws_like_eager(render._EAGER)
    with pytest.raises(RuntimeError, match="draws the example faces differently"):
        render._draws_like_eager(lambda *args: render._EAGER(*args) + 0.01)
    with pytest.raises(RuntimeError, match="differently.*nan"):
        render._draws_like_eager(lambda *args: render._EAGER(*args) * float("nan"))


@pytest.mark.parametrize("bad, message", [({"pose": np.zeros((2, 3))}, r"pose has shape \(2, 3\), expected \(3, 3\)"),
                                          ({"light": np.zeros((3, 4))}, r"light has shape \(3, 4\), expected \(3, 5\)"),
                                          ({"size": (3, 32)}, r"size \(3, 32\)")])
def test_render_faces_names_a_bad_argument(bad, message):
    ids, aus, pose, light, frame = _hard_faces(3)
    args = {"identities": ids, "aus": aus, "pose": pose, "light": light, "size": (32, 32), "frame": frame}
    with pytest.raises(ValueError, match=message):
        render_faces(**{**args, **bad})


def test_unknown_database_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        write_world(load_config("quick"), out=tmp_path, only=["rafd", "nope"])


def test_writing_is_deterministic(tmp_path):
    cfg = load_config("quick", {**TINY, "world.rafd_subjects": 1, "world.ckplus_subjects": 1})

    def digest(root):
        return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    a = write_world(cfg, out=tmp_path / "a", only=["rafd", "ckplus"])
    b = write_world(cfg, out=tmp_path / "b", only=["rafd", "ckplus"])
    for name in a:
        assert digest(a[name]) == digest(b[name]) and digest(a[name])


def test_complete_database_is_skipped_and_foreign_folder_refused(tiny_world, tmp_path, capsys):
    cfg, out, roots = tiny_world
    before = {p: p.stat().st_mtime_ns for p in roots["rafd"].iterdir()}
    write_world(cfg, out=out, only=["rafd"])
    assert "skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in roots["rafd"].iterdir()} == before
    (tmp_path / "rafd").mkdir()
    (tmp_path / "rafd" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="not written by"):
        write_world(cfg, out=tmp_path, only=["rafd"])


def test_rafd_layout(tiny_world):
    files = sorted(tiny_world[2]["rafd"].glob("*.jpg"))
    assert len(files) == 2 * 8 * 9
    pat = re.compile(r"Rafd(045|090|135)_(\d{2})_(Caucasian|Moroccan|Kid)_(male|female)_(\w+)_(left|frontal|right)")
    for f in files:
        m = pat.fullmatch(f.stem)
        assert m and m.group(5) in ALL_LABELS and len(f.stem.split("_")) == 6
    assert cv2.imread(str(files[0])).shape[:2] == (128, 96)


def test_oulu_layout(tiny_world):
    root = tiny_world[2]["oulu"]
    for mod in ("VL", "NI"):
        for light in ("Strong", "Weak", "Dark"):
            folders = sorted((root / mod / light / "P001").iterdir())
            assert [f.name for f in folders] == sorted(OULU_FOLDERS)
            assert sorted(p.name for p in folders[0].glob("*.jpeg"))[0] == "000.jpeg"


def test_mmi_layout(tiny_world):
    sessions = sorted((tiny_world[2]["mmi"] / "Sessions").iterdir())
    assert len(sessions) == 6
    for s in sessions:
        meta = next(p for p in s.glob("S*.xml") if "aucs" not in p.name)
        tags = {t.get("Name"): t.get("Value") for t in ET.parse(meta).getroot()}
        assert int(tags["Emotion"]) in MMI_CODES
        assert ET.parse(s / "session.xml").getroot().find("track").get("view") == "0"
        aus = ET.parse(meta.with_name(meta.stem + "-oao_aucs.xml")).getroot().findall("ActionUnit")
        assert aus and all(m.get("Type") in "123" for au in aus for m in au)
        cap = cv2.VideoCapture(str(meta.with_suffix(".avi")))
        assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20


def test_ckplus_layout(tiny_world):
    root = tiny_world[2]["ckplus"]
    subjects = sorted(p.name for p in (root / "cohn-kanade-images").iterdir())
    assert subjects[0] >= "S005" and all(re.fullmatch(r"S\d{3}", s) for s in subjects)
    labels = list((root / "Emotion").rglob("*_emotion.txt"))
    assert labels
    for f in labels:
        assert int(float(f.read_text().strip())) in CKPLUS_CODES
        subj, seq, last = f.name.split("_")[:3]
        frames = sorted((root / "cohn-kanade-images" / subj / seq).glob("*.png"))
        assert frames[-1].name == f"{subj}_{seq}_{last}.png" and frames[0].name.endswith("00000001.png")
    assert cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED).ndim == 2


def test_affectnet_and_ffhq_layout(tiny_world):
    root = tiny_world[2]["affectnet"]
    lines = (root / "Manually_Annotated_file_lists" / "training.csv").read_text().splitlines()
    lines += (root / "Manually_Annotated_file_lists" / "validation.csv").read_text().splitlines()[1:]
    assert lines[0] == ("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                        "facial_landmarks,expression,valence,arousal")
    assert len(lines) == 61
    for row in lines[1:]:
        path, x, y, w, h, marks, code, val, aro = row.split(",")
        assert int(code) in AFFECTNET_CODES and len(marks.split(";")) == 136
        assert re.fullmatch(r"\d+/[0-9a-f]{56}\.jpg", path) and (root / "Manually_Annotated_Images" / path).is_file()
    ffhq = sorted((tiny_world[2]["ffhq"] / "thumbnails128x128").rglob("*.png"))
    assert len(ffhq) == 20
    assert ffhq[0].relative_to(tiny_world[2]["ffhq"]).as_posix() == "thumbnails128x128/00000/00000.png"


def test_incomplete_database_is_rewritten(tmp_path):
    cfg = load_config("quick", {**TINY, "world.rafd_subjects": 1})
    root = tmp_path / "rafd"
    root.mkdir()
    (root / ".world_incomplete").touch()
    (root / "half_written.jpg").write_bytes(b"x")
    write_world(cfg, out=tmp_path, only=["rafd"])
    assert not (root / "half_written.jpg").exists() and not (root / ".world_incomplete").exists()
    assert (root / "WORLD_MANIFEST.json").is_file() and len(list(root.glob("*.jpg"))) == 72
