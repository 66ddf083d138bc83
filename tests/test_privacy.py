"""No face image or video frame is stored: after a Live session and a video analysis, the app's
home (database, cache, upload folders, registry, jobs) and the temp folder hold no picture or video,
and the database holds no binary column or value. Skips without ../shared (the clips)."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from core.config import app_paths
from core.live_session import FairGate, LiveSession, StreamSlots
from core.models import ActiveModels
from core.registry import ModelRegistry
from core.store import SessionStore
from core.video_analysis import analyze_video, default_analyzer
from tests.test_statistics_page import wmv_clip
from tests.test_tracking import read_frames

# The first bytes of every still-image and video container FFmpeg/OpenCV/PIL would write.
MAGIC = {
    b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"RIFF": "AVI/WebP/WAV",
    b"\x1a\x45\xdf\xa3": "Matroska/WebM", b"YUV4MPEG2": "Y4M", b"\x30\x26\xb2\x75": "ASF/WMV",
    b"\x00\x00\x01\xba": "MPEG-PS", b"\x47": "MPEG-TS", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    b"\x93NUMPY": "NumPy array",
}


def _picture_kind(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    for magic, kind in MAGIC.items():
        if head.startswith(magic) and not (magic == b"\x47" and path.stat().st_size % 188):
            return kind
    return None


def _pictures_under(root: Path, skip: tuple[Path, ...] = (), since: float = 0.0) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not any((Path(folder) / d).resolve() == s.resolve() for s in skip)]
        for name in files:
            path = Path(folder) / name
            try:
                if path.is_symlink() or path.stat().st_mtime < since:
                    continue
            except OSError:
                continue
            if (kind := _picture_kind(path)) is not None:
                found.append(f"{path} ({kind})")
    return found


def test_no_frame_or_face_image_is_stored_after_live_and_video(shared, tmp_path, tmp_path_factory):
    started = time.time() - 1
    home = app_paths().home
    store = SessionStore()
    models = ActiveModels(registry=ModelRegistry(app_paths().registry_dir))

    live = LiveSession(models, store_factory=lambda: store, slots=StreamSlots(2), gate=FairGate(1), max_fps=0)
    live.arm()
    for frame in read_frames("multi_face_640x480.avi", 12, step=1, start=30):
        live.submit(frame)
        time.sleep(0.05)
    assert live.wait_idle(60)
    live_id = live.stop()

    clip = wmv_clip(shared, tmp_path / "interview.wmv")
    video = analyze_video(clip, default_analyzer(), store, name="interview")

    assert len(store.results(live_id)) > 0 and video.session_id != live_id
    assert len(store.results(video.session_id)) > 0

    # 1. The app's home: database, cache (and its uploads/), registry, jobs: no picture, no video.
    assert _pictures_under(home) == []
    assert not any((home / "cache" / "uploads").glob("*")) if (home / "cache" / "uploads").exists() else True
    # 2. The temp folder: nothing new that is a picture or a video (pytest's own folder, where the
    #    test's input clip lies, is left out).
    assert _pictures_under(Path(tempfile.gettempdir()), skip=(tmp_path_factory.getbasetemp(),), since=started) == []
    # 3. The database: numbers and short texts only, no binary column and no binary or long value.
    engine = sa.create_engine(app_paths().database_url)
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                assert not isinstance(column["type"], sa.LargeBinary), (table, column["name"])
                name = column["name"]
                kinds = {row[0] for row in conn.execute(sa.text(f'SELECT DISTINCT typeof("{name}") FROM "{table}"'))}
                assert "blob" not in kinds, (table, name)
                longest = conn.execute(sa.text(f'SELECT MAX(LENGTH("{name}")) FROM "{table}"')).scalar() or 0
                assert longest < 4096, (table, name, longest)  # a 640x480 frame would be ~900 KB


def test_the_scan_finds_a_stored_frame(tmp_path):
    """Control: the check above would see a frame saved as an image, a video or a NumPy array."""
    import cv2
    import numpy as np

    frame = np.full((48, 64, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "face.jpg"), frame)
    cv2.imwrite(str(tmp_path / "face.png"), frame)
    np.save(tmp_path / "frame.npy", frame)
    (tmp_path / "numbers.csv").write_text("1,2,3\n")
    found = _pictures_under(tmp_path)
    assert len(found) == 3 and not any("numbers.csv" in f for f in found), found


def test_several_sessions_of_one_participant_are_deleted_in_one_action():
    from streamlit.testing.v1 import AppTest

    from seed_sessions import seed_session

    store = SessionStore()
    mine = [seed_session(store, 30, name=f"P07 task {i}", seed=i) for i in (1, 2)]
    other = seed_session(store, 30, name="P08 task 1")
    for session_id, who in zip((*mine, other), ("P07", "P07", "P08")):
        store.update_session(session_id, participant=who)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "statistics.py"),
                           default_timeout=120).run()
    at.selectbox(key="delete_participant").set_value("P07").run()   # by the participant label...
    at.button(key="delete_participant_select").click().run()
    assert sorted(at.multiselect(key="delete_many").value) == sorted(mine)
    at.button(key="delete_many_ask").click().run()
    assert "Delete 2 sessions" in at.warning[0].value and "cannot be undone" in at.warning[0].value
    at.button(key="delete_many_no").click().run()
    assert len(store.list_sessions()) == 3
    at.multiselect(key="delete_many").set_value(mine).run()         # ...or by choosing the sessions
    at.button(key="delete_many_ask").click().run()
    assert "Delete 2 sessions" in at.warning[0].value and "cannot be undone" in at.warning[0].value
    at.button(key="delete_many_no").click().run()
    assert len(store.list_sessions()) == 3
    at.multiselect(key="delete_many").set_value(mine).run()
    at.button(key="delete_many_ask").click().run()
    at.button(key="delete_many_yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.list_sessions()["id"].tolist() == [other]
    assert all(store.results(i).empty for i in mine)
    assert at.multiselect(key="delete_many").value == []
