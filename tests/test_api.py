"""The notebook API (core.api): equal to the CSV export, faces of a still, stored sessions read back."""
import core  # noqa: F401  (first: safe native-library import order)

import io
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import pytest

from core.api import IMAGE_COLUMNS, analyze_image, analyze_video, load_session
from core.export import FRAME_COLUMNS, write_frames_csv
from core.store import SessionStore
from core.video_analysis import VideoError
from tests.clips import read_frames
from tests.short_clips import cut_clip, truncated_copy

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    clip = cut_clip("multi_face_640x480.avi", folder / "three.avi", 40)
    (folder / "markers.csv").write_text("time_s,label\n0.2,go\n")
    url = f"sqlite:///{folder / 'api.db'}"
    frame = analyze_video(clip, participant="P03", tags="condition=A; site=Leeds", markers=folder / "markers.csv",
                          db=url)
    return frame, url, folder


def test_video_frame_equals_the_csv_export(analysed):
    frame, url, _ = analysed
    store = SessionStore(url)
    session_id = frame.attrs["session_id"]
    buffer = io.StringIO()
    write_frames_csv(store, [session_id], buffer)
    exported = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert list(frame.columns) == list(exported.columns) and list(frame.columns)[:len(FRAME_COLUMNS)] == list(
        FRAME_COLUMNS)
    assert len(frame) == len(exported) > 100
    written = pd.read_csv(io.StringIO(frame.to_csv(index=False)))  # the same values, typed as the CSV reads them
    pd.testing.assert_frame_equal(written, exported)
    for column in ("frame_index", "face_id", "box_x", "p_happy", "age", "p_female", "elapsed_s"):  # no CSV between
        pd.testing.assert_series_equal(frame[column], exported[column], check_dtype=False)
    assert (frame["timestamp"] == exported["timestamp"]).all() and (frame["gender"] == exported["gender"]).all()
    assert set(frame["face_id"]) >= {1, 2, 3}
    info = store.get_session(session_id)
    assert info["participant"] == "P03" and info["tags"] == {"condition": "A", "site": "Leeds"}
    assert list(store.markers(session_id)["label"]) == ["go"]


def test_the_api_loads_without_streamlit():
    """A notebook's import (a fresh interpreter: this test process has run Streamlit pages)."""
    probe = "import core, core.api, sys; raise SystemExit(1 if 'streamlit' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, timeout=120).returncode == 0


def test_load_session_round_trip(analysed):
    frame, url, _ = analysed
    again = load_session(frame.attrs["session_id"], db=url)
    pd.testing.assert_frame_equal(again, frame)
    assert again.attrs["session"]["participant"] == "P03"
    with pytest.raises(KeyError):
        load_session(999_999, db=url)


def test_analyze_image_finds_the_three_faces(analysed, tmp_path):
    bgr = read_frames("multi_face_640x480.avi", 1, start=20)[0]
    faces = analyze_image(bgr)
    assert list(faces.columns) == list(IMAGE_COLUMNS) and len(faces) == 3
    assert faces["dominant_emotion"].notna().all() and faces["age"].between(1, 100).all()
    assert set(faces["gender"]) <= {"female", "male"}
    assert (faces[[c for c in faces.columns if c.startswith("p_") and c != "p_female"]].sum(axis=1) - 1).abs().max() \
        < 1e-3
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), bgr)
    from_file = analyze_image(path)
    from_rgb = analyze_image(bgr[:, :, ::-1], rgb=True)
    for other in (from_file, from_rgb):
        assert len(other) == 3
        pd.testing.assert_frame_equal(other[["box_x", "box_y"]], faces[["box_x", "box_y"]])
    with pytest.raises(ValueError, match="missing.png"):
        analyze_image(tmp_path / "missing.png")


def test_a_damaged_video_raises_naming_it_and_stores_nothing(analysed):
    _, url, folder = analysed
    broken = truncated_copy(folder / "three.avi", folder / "broken.avi")
    before = len(SessionStore(url).list_sessions())
    with pytest.raises(VideoError, match="broken.avi"):
        analyze_video(broken, db=url)
    assert len(SessionStore(url).list_sessions()) == before
