"""Session store against the default SQLite file (tests/test_store_postgres.py reruns the shared
ones against a real PostgreSQL server)."""
import core  # noqa: F401  (first: safe native-library import order)

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from core.results import FaceResult, FrameResult
from core.config import EMOTIONS
from core.store import RESULT_COLUMNS, SESSION_COLUMNS, SessionStore
from core.store_schema import SCHEMA_VERSION

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_url(facesense_home) -> str:
    return f"sqlite:///{facesense_home / 'facesense.db'}"


def frame(index: int, t0: float, faces: int = 2, fps: float = 30.0) -> FrameResult:
    probs = np.roll(np.linspace(0.02, 0.3, len(EMOTIONS)), index % len(EMOTIONS))
    probs = (probs / probs.sum()).astype(np.float32)
    return FrameResult(
        frame_index=index, timestamp=t0 + index / fps, timings_ms={"total": 5.0},
        faces=[FaceResult(face_id=j + 1, box=(10 * j, 20, 64, 64), emotion_probs=probs,
                          emotion=EMOTIONS[int(np.argmax(probs))], age=30.0 + j, gender=0.25 * j)
               for j in range(faces)],
    )


@contextmanager
def write_lock(url: str):
    """Hold the results table's write lock from a separate connection, as a slow writer would."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        conn = psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database)
        conn.execute("LOCK TABLE frame_results IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def test_session_round_trip(db_url):
    store = SessionStore(db_url)
    start = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
    sid = store.start_session("  pilot 1  ", "webcam", {"smoothing_window": 5}, {"emotion": "emo-v1"},
                              started_at=start)
    t0 = start.timestamp()
    with store.writer(sid) as writer:
        for i in range(90):
            writer.add(frame(i, t0))
        writer.add(FrameResult(frame_index=90, timestamp=t0 + 3.0, faces=[], timings_ms={}))  # no face
        writer.add(FrameResult(frame_index=91, timestamp=t0 + 3.1, faces=[], timings_ms={}, error="boom"))
    store.end_session(sid, ended_at=start + timedelta(seconds=3.2))

    info = store.get_session(sid)
    assert (info["name"], info["source"], info["status"]) == ("pilot 1", "webcam", "ended")
    assert info["started_at"] == start and info["ended_at"] == start + timedelta(seconds=3.2)
    assert info["settings"] == {"smoothing_window": 5} and info["model_versions"] == {"emotion": "emo-v1"}
    assert (info["frame_count"], info["face_frame_count"], info["row_count"]) == (91, 90, 180)  # failed: not counted
    assert info["duration_s"] == pytest.approx(3.2)

    rows = store.results(sid)
    assert list(rows.columns) == list(RESULT_COLUMNS) and len(rows) == 180
    assert sorted(rows["face_id"].unique()) == [1, 2] and store.face_ids(sid) == [1, 2]
    first = rows.iloc[1]  # frame 0, face 2
    expected = frame(0, t0).faces[1]
    assert first["timestamp"] == pytest.approx(t0) and first["frame_index"] == 0
    assert [first[c] for c in ("box_x", "box_y", "box_w", "box_h")] == list(expected.box)
    assert [first[f"p_{e}"] for e in EMOTIONS] == pytest.approx(expected.emotion_probs.tolist(), abs=1e-6)
    assert first["dominant_emotion"] == expected.emotion
    assert (first["age"], first["p_female"]) == pytest.approx((31.0, 0.25))

    listed = store.list_sessions()
    assert list(listed.columns) == list(SESSION_COLUMNS) and listed["id"].tolist() == [sid]


def test_emotion_model_off_stores_nulls(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("no emotion", "webcam", {}, {})
    face = FaceResult(face_id=1, box=(0, 0, 50, 50), emotion_probs=None, emotion=None, age=40.0, gender=float("nan"))
    with store.writer(sid) as writer:
        writer.add(FrameResult(frame_index=0, timestamp=time.time(), faces=[face], timings_ms={}))
    row = store.results(sid).iloc[0]
    assert row[[f"p_{e}" for e in EMOTIONS]].isna().all() and row["dominant_emotion"] is None
    assert row["age"] == 40.0 and np.isnan(row["p_female"])


def test_malformed_result_is_skipped_not_fatal(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("odd", "webcam", {}, {})
    writer = store.writer(sid)
    t0 = time.time()
    writer.add(frame(0, t0))
    bad = frame(1, t0)
    bad.faces[0].box = None
    writer.add(bad)
    writer.add(frame(2, t0))
    assert writer.flush()
    writer.close()
    assert sorted(store.results(sid)["frame_index"].unique()) == [0, 2]
    assert store.get_session(sid)["frame_count"] == 2


def test_writer_and_reader_at_once(db_url):
    """A video thread writes while the page reads: readers see a growing, consistent session."""
    store = SessionStore(db_url)
    sid = store.start_session("concurrent", "webcam", {}, {})
    writer = store.writer(sid, flush_interval_s=0.1)
    t0, n_frames = time.time(), 400

    def video_thread():
        for i in range(n_frames):
            writer.add(frame(i, t0, faces=3))
            time.sleep(0.003)

    producer = threading.Thread(target=video_thread)
    producer.start()
    seen, reader = [], SessionStore(db_url)
    while producer.is_alive():
        rows = reader.results(sid)
        info = reader.get_session(sid)
        assert len(rows) % 3 == 0  # whole frames only: a batch is one transaction
        assert info["row_count"] >= len(rows)  # totals commit with their rows
        seen.append(len(rows))
        time.sleep(0.05)
    producer.join()
    writer.close()
    store.end_session(sid)
    assert seen == sorted(seen), "a reader saw rows disappear"
    assert any(0 < n < 3 * n_frames for n in seen), f"no partial progress observed: {seen}"
    assert len(reader.results(sid)) == 3 * n_frames
    assert reader.get_session(sid)["frame_count"] == n_frames


def test_add_never_waits_for_the_database(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("locked", "webcam", {}, {})
    writer = store.writer(sid, flush_interval_s=0.05)
    t0 = time.time()
    with write_lock(db_url):
        done = threading.Event()

        def video_thread():
            for i in range(200):
                writer.add(frame(i, t0))
            done.set()

        threading.Thread(target=video_thread).start()
        assert done.wait(10), "add() blocked while the database was locked"
        time.sleep(0.3)  # the writer thread is now stuck behind the lock, rows still queued
    assert writer.flush(60)
    writer.close()
    assert len(store.results(sid)) == 400


LOSS_BOUND_S = 0.5
KILLED_WRITER = textwrap.dedent("""
    import core
    import sys, time
    from core.store import SessionStore
    from test_store import frame
    store = SessionStore(sys.argv[1])
    sid = store.start_session("killed", "webcam", {}, {})
    print("session", sid, flush=True)
    writer = store.writer(sid)
    t0 = time.time()
    i = 0
    while True:
        writer.add(frame(i, t0))
        print("added", i, time.time(), flush=True)
        i += 1
        time.sleep(0.01)
""")


def test_rows_survive_abrupt_kill_and_session_is_recovered(db_url):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, db_url], stdout=subprocess.PIPE,
                             text=True, env=env, cwd=REPO_ROOT)
    try:
        sid = int(child.stdout.readline().split()[1])
        added: dict[int, float] = {}
        while not added or time.time() - min(added.values()) < 2.5:
            _, index, at = child.stdout.readline().split()
            added[int(index)] = float(at)
        child.send_signal(signal.SIGKILL)
        killed_at = time.time()
    finally:
        child.kill()
        child.wait(30)

    fresh = SessionStore(db_url)  # default staleness: a just-killed writer might still be alive
    info = fresh.get_session(sid)
    assert info["status"] == "recording"
    stored = set(fresh.results(sid)["frame_index"])
    # The README's promise: at most the last ~0.5 s of results is lost (issue 21.9: 1.19 s were)
    must_have = {i for i, at in added.items() if at < killed_at - LOSS_BOUND_S}
    assert must_have and must_have <= stored, \
        f"lost frames added >{LOSS_BOUND_S} s before the kill: {sorted(must_have - stored)}"
    lost = [at for i, at in added.items() if i not in stored]
    print(f"frames added {len(added)}, stored {len(stored)}, "
          f"lost window {killed_at - min(lost) if lost else 0.0:.2f} s before the kill")

    closed = SessionStore(db_url, recover=False).recover(stale_after_s=0)  # next start, writer long silent
    assert sid in closed
    info = fresh.get_session(sid)
    assert info["status"] == "ended abnormally" and info["ended_abnormally"]
    last = fresh.results(sid)["timestamp"].max()
    assert info["ended_at"].timestamp() == pytest.approx(last, abs=1e-3)


def test_a_kill_loses_at_most_half_a_second_even_with_slow_commits(db_url, monkeypatch):
    """Issue 21.9: under load a commit takes a while; results must still wait at most ~0.5 s in memory.

    The window a kill can lose is, for each commit, the time from the oldest frame it made durable
    being added to the commit's end. Commits are slowed to 0.15 s (as on a busy machine)."""
    from core.store import SessionWriter

    store = SessionStore(db_url)
    sid = store.start_session("slow disk", "webcam", {}, {})
    real_write = SessionWriter._write
    commits: list[tuple[float, set[int]]] = []

    def slow_write(self, rows, *args):
        time.sleep(0.15)
        ok = real_write(self, rows, *args)
        commits.append((time.time(), {row["frame_index"] for row in rows}))
        return ok

    monkeypatch.setattr(SessionWriter, "_write", slow_write)
    writer = store.writer(sid)
    added: dict[int, float] = {}
    t0 = time.time()
    while time.time() - t0 < 3.0:
        index = len(added)
        writer.add(frame(index, t0))
        added[index] = time.time()
        time.sleep(0.01)
    writer.close()
    windows = [end - min(added[i] for i in frames) for end, frames in commits[:-1] if frames]  # not the close
    print(f"{len(commits)} commits; time a result waited for its commit: median {np.median(windows):.2f} s, "
          f"longest {max(windows):.2f} s")
    # the bound is the flush interval plus a commit (0.40 s here) plus what a busy machine adds to
    # the writer thread's wake-up: 0.67 s was seen once with other work on both cores
    assert len(windows) >= 5 and np.median(windows) <= LOSS_BOUND_S and max(windows) <= 0.8
    assert len(store.results(sid)) == 2 * len(added)


def test_recover_leaves_sessions_recording_in_this_process_alone(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("still live", "webcam", {}, {})
    assert SessionStore(db_url, stale_after_s=0).recover(0) == []
    assert store.get_session(sid)["status"] == "recording"


def test_rename_and_delete(db_url):
    store = SessionStore(db_url)
    keep = store.start_session("keep", "video", {}, {}, source_path="/data/a.mp4")
    drop = store.start_session("drop", "webcam", {}, {})
    with store.writer(drop) as writer:
        for i in range(10):
            writer.add(frame(i, time.time()))
    with pytest.raises(ValueError, match="empty"):
        store.rename_session(drop, "   ")
    store.end_session(drop)
    store.end_session(keep)
    store.rename_session(keep, "Renamed ✓")
    store.delete_session(drop)
    listed = store.list_sessions()
    assert listed["id"].tolist() == [keep] and listed["name"].tolist() == ["Renamed ✓"]
    assert store.results(drop).empty
    with pytest.raises(KeyError):
        store.delete_session(drop)
    with pytest.raises(KeyError):
        store.writer(drop)


def test_delete_refused_while_recording(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("live", "webcam", {}, {})
    writer = store.writer(sid)
    with pytest.raises(ValueError, match="still recording"):
        store.delete_session(sid)
    store.end_session(sid)  # also closes the writer
    assert writer._closed
    store.delete_session(sid)


def test_bad_arguments(db_url):
    store = SessionStore(db_url)
    with pytest.raises(ValueError, match="source"):
        store.start_session("x", "phone", {}, {})
    with pytest.raises(KeyError):
        store.get_session(12345)
    sid = store.start_session("", "webcam", {"detector": object()}, {})  # odd settings become text
    assert store.get_session(sid)["name"].startswith("webcam ")


def test_participant_tags_and_markers_are_stored_edited_and_deleted_with_the_session(db_url):
    store = SessionStore(db_url)
    sid = store.start_session("P07 screen test", "webcam", {}, {}, participant=" P07 ", tags={"condition": "A"})
    described = store.get_session(sid)
    assert (described["participant"], described["tags"], described["batch"]) == ("P07", {"condition": "A"}, None)
    first = store.add_marker(sid, "screen 1", 1767225600.0)
    store.add_marker(sid, "instructions", 1767225590.0)
    assert list(store.markers(sid)["label"]) == ["instructions", "screen 1"]   # in time order
    store.update_marker(first, label="screen 1 (login)", timestamp=1767225601.5)
    row = store.markers(sid).set_index("id").loc[first]
    assert (row["label"], row["timestamp"]) == ("screen 1 (login)", 1767225601.5)
    store.update_session(sid, tags={"condition": "B", "site": "lab"}, baseline={"kind": "first_s", "seconds": 5})
    listed = store.list_sessions().set_index("id").loc[sid]
    assert listed["tags"] == {"condition": "B", "site": "lab"} and listed["participant"] == "P07"
    assert listed["baseline"] == {"kind": "first_s", "seconds": 5}
    with pytest.raises(ValueError):
        store.add_marker(sid, "  ")
    with pytest.raises(KeyError):
        store.add_marker(sid + 99, "nobody's")
    store.end_session(sid)
    store.delete_session(sid)
    assert store.markers(sid).empty


def test_old_schema_is_upgraded(db_url):
    SessionStore(db_url).dispose()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE sessions DROP COLUMN heartbeat_at"))
        conn.execute(sa.text("DELETE FROM facesense_meta"))
    engine.dispose()
    store = SessionStore(db_url)
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("sessions")}
    assert "heartbeat_at" in columns
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM facesense_meta WHERE key='schema_version'")).scalar() \
            == str(SCHEMA_VERSION)
    store.start_session("after upgrade", "webcam", {}, {})


SHARED_TESTS = [name for name in dir() if name.startswith("test_")]


def test_sqlite_default_location_created_with_wal(facesense_home, monkeypatch):
    home = facesense_home / "nested" / "home"
    monkeypatch.setenv("FACESENSE_HOME", str(home))
    store = SessionStore()
    assert (home / "facesense.db").is_file()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_database_url_setting_is_used(facesense_home, monkeypatch):
    path = facesense_home / "elsewhere" / "shared.db"
    monkeypatch.setenv("FACESENSE_DB_URL", f"sqlite:///{path}")
    SessionStore().start_session("x", "webcam", {}, {})
    assert path.is_file()
