"""Studies (issue 17): valence, marker segments, baselines, group comparison, markers that survive."""
import core  # noqa: F401  (first: safe native-library import order)

import io
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import export, study
from core import session_stats as stats
from core.results import FaceResult, FrameResult
from core.config import EMOTIONS
from core.store import SessionStore
from seed_sessions import seed_session

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
START = datetime(2025, 6, 2, 14, 0, 0, tzinfo=timezone.utc)
T0 = START.timestamp()
P = [f"p_{e}" for e in EMOTIONS]


def probs(**given: float) -> np.ndarray:
    """Probabilities in EMOTIONS order; the rest of 1 goes to neutral."""
    values = np.array([given.get(e, 0.0) for e in EMOTIONS], dtype=np.float32)
    values[EMOTIONS.index("neutral")] += 1.0 - values.sum()
    return values


def record(store: SessionStore, frames: list[list[tuple[int, np.ndarray]]], fps: float = 10.0,
           name: str = "hand-made", **info) -> int:
    """A session whose frame i (at T0 + i/fps) holds the given (face id, probabilities)."""
    sid = store.start_session(name, "video", {}, {}, started_at=START, **info)
    with store.writer(sid) as writer:
        for i, faces in enumerate(frames):
            writer.add(FrameResult(i, T0 + i / fps, [
                FaceResult(face_id, (10 * face_id, 10, 40, 40), p, EMOTIONS[int(np.argmax(p))], 30.0, 0.5)
                for face_id, p in faces], {"total": 1.0}))
    store.end_session(sid, ended_at=datetime.fromtimestamp(T0 + len(frames) / fps, timezone.utc))
    return sid


def csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


# -- valence and baseline against hand-computed frames ---------------------------------------------------

@pytest.mark.unit
def test_valence_is_happy_minus_the_strongest_negative_emotion():
    store = SessionStore()
    frames = [
        [(1, probs(happy=0.6, sad=0.1, angry=0.05, fear=0.15, disgust=0.02))],  # 0.6 - 0.15 = 0.45
        [(1, probs(happy=0.05, sad=0.6, angry=0.1))],                           # 0.05 - 0.6 = -0.55
        [(1, probs(surprise=0.5, disgust=0.3, happy=0.2))],                     # 0.2 - 0.3 = -0.1
        [(1, probs(happy=1.0))],                                                # 1.0
    ]
    sid = record(store, frames)
    table = csv(export.frames_csv_bytes(store, [sid]))
    assert list(table.columns) == list(export.FRAME_COLUMNS) and table.columns[-1] == "valence"  # appended last
    assert table["valence"].tolist() == pytest.approx([0.45, -0.55, -0.1, 1.0], abs=1e-5)
    assert study.valence_of(probs(happy=0.05, sad=0.6, angry=0.1)) == pytest.approx(-0.55, abs=1e-6)
    assert study.valence_of(None) is None
    summary = csv(export.summary_csv_bytes(store, [sid])).iloc[0]
    assert summary["mean_valence"] == pytest.approx((0.45 - 0.55 - 0.1 + 1.0) / 4, abs=1e-5)
    # the timeline the chart draws: buckets narrower than the frame interval, one frame each
    loaded = study.session_study(store, sid)
    line = study.study_timeline(loaded, bucket_s=0.05)
    assert line["valence"].tolist() == pytest.approx([0.45, -0.55, -0.1, 1.0], abs=1e-5)
    in_sql = stats.emotion_timeline(store, sid, min_bucket_s=0.05, start=T0)  # the chart without markers
    assert in_sql["valence"].tolist() == pytest.approx([0.45, -0.55, -0.1, 1.0], abs=1e-5)


@pytest.mark.unit
def test_baseline_corrected_values_are_each_faces_difference_from_its_own_baseline_mean():
    store = SessionStore()
    a1, a2 = probs(happy=0.2, sad=0.4), probs(happy=0.4, sad=0.2)  # face 1 in the first second
    b1 = probs(happy=0.1, angry=0.5)                               # face 2 in the first second
    later1, later2 = probs(happy=0.9), probs(sad=0.7, happy=0.1)
    frames = [[(1, a1), (2, b1)], [(1, a2)], [(1, later1), (2, later2)], [(1, later1), (3, later1)]]
    sid = record(store, frames, fps=1.0)  # frames at 0, 1, 2, 3 s
    store.update_session(sid, baseline=study.Baseline.first_seconds(2.0).to_dict())
    table = csv(export.frames_csv_bytes(store, [sid]))
    assert list(table.columns) == [*export.FRAME_COLUMNS, *export.BASELINE_COLUMNS]  # appended at the end

    base1 = (a1 + a2) / 2  # face 1: mean of its two frames in [0, 2) s
    base1_valence = np.mean([0.2 - 0.4, 0.4 - 0.2])
    row = table[(table["frame_index"] == 2) & (table["face_id"] == 1)].iloc[0]
    for i, name in enumerate(P):
        assert row[f"{name}_vs_baseline"] == pytest.approx(later1[i] - base1[i], abs=2e-5), name
    assert row["valence_vs_baseline"] == pytest.approx(0.9 - base1_valence, abs=2e-5)
    row2 = table[(table["frame_index"] == 2) & (table["face_id"] == 2)].iloc[0]
    assert row2["p_sad_vs_baseline"] == pytest.approx(0.7 - 0.0, abs=2e-5)
    assert row2["valence_vs_baseline"] == pytest.approx((0.1 - 0.7) - (0.1 - 0.5), abs=2e-5)
    face3 = table[table["face_id"] == 3]  # never seen during the baseline: empty, not zero
    assert face3[list(export.BASELINE_COLUMNS)].isna().all().all()
    base_rows = table[(table["face_id"] == 1) & (table["elapsed_s"] < 2)]
    assert base_rows["valence_vs_baseline"].mean() == pytest.approx(0.0, abs=2e-5)

    # a marker segment as baseline: the segment "rest" (1 s .. 1.5 s) holds only face 1's a2
    rest = store.add_marker(sid, "rest", T0 + 1.0)
    store.add_marker(sid, "task", T0 + 1.5)
    store.update_session(sid, baseline=study.Baseline.segment(rest).to_dict())
    assert store.get_session(sid)["baseline"] == {"kind": "segment", "marker_id": rest}  # stored with the session
    table = csv(export.frames_csv_bytes(store, [sid]))
    row = table[(table["frame_index"] == 2) & (table["face_id"] == 1)].iloc[0]
    assert row["p_happy_vs_baseline"] == pytest.approx(later1[3] - a2[3], abs=2e-5)
    assert table[table["face_id"] == 2][list(export.BASELINE_COLUMNS)].isna().all().all()
    # the segment table reports the same differences
    segs = study.segment_stats(study.session_study(store, sid))
    rest_face1 = segs[(segs["label"] == "rest") & (segs["face_id"] == 1)].iloc[0]
    assert rest_face1["valence_vs_baseline"] == pytest.approx(0.0, abs=1e-6)
    # its marker deleted: the baseline is reported as gone, the data stay and export without it
    store.delete_marker(rest)
    loaded = study.session_study(store, sid)
    assert loaded.baseline_means is None and "no longer exists" in loaded.baseline_error
    table = csv(export.frames_csv_bytes(store, [sid]))
    assert len(table) == 7 and table["valence_vs_baseline"].isna().all()


@pytest.mark.unit
def test_a_multi_session_export_has_baseline_columns_empty_for_sessions_without_one():
    store = SessionStore()
    with_base = record(store, [[(1, probs(happy=0.5))], [(1, probs(happy=0.7))]], fps=1.0)
    without = record(store, [[(1, probs(sad=0.5))]], fps=1.0)
    store.update_session(with_base, baseline={"kind": "first_seconds", "seconds": 1})
    table = csv(export.frames_csv_bytes(store, [with_base, without]))
    assert list(table.columns) == [*export.FRAME_COLUMNS, *export.BASELINE_COLUMNS]
    assert table.loc[table["session_id"] == with_base, "p_happy_vs_baseline"].tolist() == pytest.approx([0.0, 0.2])
    assert table.loc[table["session_id"] == without, list(export.BASELINE_COLUMNS)].isna().all().all()


# -- segments against a pandas computation on the exported CSV ------------------------------------------------

def _pandas_segments(frames_csv: pd.DataFrame, markers_csv: pd.DataFrame, n_frames: int, fps: float,
                     end_s: float) -> pd.DataFrame:
    """The segment table recomputed from the two exported files, the way an analyst would."""
    starts = [0.0, *markers_csv["time_s"].tolist()]
    labels = [study.BEFORE_FIRST_MARKER, *markers_csv["label"].tolist()]
    edges = [*starts[1:], end_s]
    frame_times = np.arange(n_frames) / fps  # every analysed frame, faces or not
    rows = []
    for k, (a, b, label) in enumerate(zip(starts, edges, labels)):
        last = k == len(starts) - 1
        inside = frames_csv[(frames_csv["elapsed_s"] >= a) & ((frames_csv["elapsed_s"] <= b) if last
                                                             else (frames_csv["elapsed_s"] < b))]
        n_seg = int(((frame_times >= a) & ((frame_times <= b) if last else (frame_times < b))).sum())
        for face_id, face in inside.groupby("face_id"):
            means = face[P].mean()
            rows.append({"segment": k, "label": label, "start_s": a, "end_s": b, "face_id": face_id,
                         "frames": len(face), "frames_in_segment": n_seg, "face_found_share": len(face) / n_seg,
                         **means.to_dict(), "dominant_emotion": means.idxmax()[2:],
                         "valence": (face["p_happy"] - face[["p_angry", "p_sad", "p_fear", "p_disgust"]]
                                     .max(axis=1)).mean()})
    return pd.DataFrame(rows)


@pytest.mark.unit
def test_segment_statistics_equal_a_pandas_computation_on_the_exported_csv():
    store = SessionStore()
    sid = seed_session(store, 150, n_faces=3, fps=30.0, start=START)  # 5 s; face 3 away in frames 60..89
    for at, label in [(1.01, "instructions"), (2.51, "screen 1"), (4.01, "screen 2")]:  # between frames
        store.add_marker(sid, label, T0 + at)
    frames_csv = csv(export.frames_csv_bytes(store, [sid]))
    markers_csv = csv(export.markers_csv_bytes(store, [sid]))
    assert list(markers_csv.columns) == list(export.MARKER_EXPORT_COLUMNS)
    assert markers_csv["time_s"].tolist() == [1.01, 2.51, 4.01]
    segments_csv = csv(export.segments_csv_bytes(store, [sid]))
    assert list(segments_csv.columns) == list(export.SEGMENT_EXPORT_COLUMNS)

    expected = _pandas_segments(frames_csv, markers_csv, 150, 30.0, 5.0)
    assert len(segments_csv) == len(expected) == 4 * 3
    got = segments_csv.sort_values(["segment", "face_id"]).reset_index(drop=True)
    assert got["label"].tolist() == expected["label"].tolist()
    assert got["frames"].tolist() == expected["frames"].tolist()
    assert got["frames_in_segment"].tolist() == expected["frames_in_segment"].tolist()
    assert got["dominant_emotion"].tolist() == expected["dominant_emotion"].tolist()
    for column in ("start_s", "end_s", "face_found_share", *P, "valence"):
        assert got[column].to_numpy() == pytest.approx(expected[column].to_numpy(), abs=5e-5), column
    assert got["duration_s"].to_numpy() == pytest.approx((expected["end_s"] - expected["start_s"]).to_numpy())
    # face 3 left for frames 60..89 (2.0 .. 2.97 s): found in part of "instructions" and "screen 1" only
    share = got[got["face_id"] == 3].set_index("label")["face_found_share"]
    assert share["instructions"] == pytest.approx((60 - 31) / (76 - 31), abs=1e-5)
    assert share["screen 1"] == pytest.approx((121 - 90) / (121 - 76), abs=1e-5)
    assert share["screen 2"] == 1.0


@pytest.mark.unit
def test_frames_without_any_face_count_in_the_segment_they_fall_in():
    store = SessionStore()
    happy = probs(happy=0.8)
    frames = [[(1, happy)] if not 10 <= i < 20 else [] for i in range(40)]  # nobody in view at 1.0 .. 1.9 s
    sid = record(store, frames, fps=10.0)
    store.add_marker(sid, "away", T0 + 0.95)
    store.add_marker(sid, "back", T0 + 2.45)
    got = study.segment_stats(study.session_study(store, sid)).set_index("label")
    assert got.loc["away", "frames_in_segment"] == 15 and got.loc["away", "frames"] == 5
    assert got.loc["away", "face_found_share"] == pytest.approx(5 / 15)
    assert got.loc[study.BEFORE_FIRST_MARKER, "face_found_share"] == 1.0
    assert got.loc["back", "frames"] == got.loc["back", "frames_in_segment"] == 15


# -- groups -----------------------------------------------------------------------------------------------

@pytest.mark.unit
def test_group_comparison_of_three_tagged_sessions():
    store = SessionStore()
    ids = {}
    for seed, (participant, condition) in enumerate([("P1", "A"), ("P2", "A"), ("P3", "B")]):
        sid = seed_session(store, 60, n_faces=2, start=START.replace(hour=10 + seed), seed=seed)
        store.update_session(sid, participant=participant, tags={"condition": condition, "site": "Leeds"})
        ids[participant] = sid
    sessions = store.list_sessions()
    assert study.group_keys(sessions) == ["participant", "tag:condition", "tag:site"]
    per_session = study.per_session_means(store, sessions, "tag:condition")
    groups = study.compare_groups(per_session).set_index("group")

    frames = csv(export.frames_csv_bytes(store, list(ids.values())))  # the same from the exported rows
    by_session = frames.groupby("session_id")[[*P, "valence"]].mean()
    a = by_session.loc[[ids["P1"], ids["P2"]]]
    assert groups.loc["A", "sessions"] == 2 and groups.loc["B", "sessions"] == 1
    assert groups.loc["A", "mean_valence"] == pytest.approx(a["valence"].mean(), abs=1e-4)
    assert groups.loc["A", "std_valence"] == pytest.approx(a["valence"].std(ddof=1), abs=1e-4)
    assert groups.loc["A", "mean_p_happy"] == pytest.approx(a["p_happy"].mean(), abs=1e-4)
    assert groups.loc["B", "mean_valence"] == pytest.approx(by_session.loc[ids["P3"], "valence"], abs=1e-4)
    assert np.isnan(groups.loc["B", "std_valence"])  # one session: no spread
    # tags and participant are in the summary CSV
    summary = csv(export.summary_csv_bytes(store, list(ids.values()))).set_index("participant")
    assert summary.loc["P3", "tags"] == "condition=B; site=Leeds"
    assert summary.loc["P1", "mean_valence"] == pytest.approx(by_session.loc[ids["P1"], "valence"], abs=1e-4)
    # sessions without the tag form their own group
    store.update_session(ids["P3"], tags={"site": "Leeds"})
    regrouped = study.compare_groups(study.per_session_means(store, store.list_sessions(), "tag:condition"))
    assert regrouped["group"].tolist() == ["(not set)", "A"]


@pytest.mark.unit
def test_bad_baselines_and_group_keys_are_refused_with_a_clear_message():
    with pytest.raises(study.StudyError, match="N > 0"):
        study.Baseline.first_seconds(0)
    with pytest.raises(study.StudyError, match="kind must be one of"):
        study.Baseline.from_dict({"kind": "middle"})
    with pytest.raises(study.StudyError, match="cannot group by 'colour'"):
        study.group_value({"tags": {}}, "colour")


# -- the database of the previous version -------------------------------------------------------------------

@pytest.mark.unit
def test_a_database_written_before_studies_upgrades_in_place_and_keeps_every_row(facesense_home):
    path = facesense_home / "before_studies.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / "store_before_studies.sql").read_text())
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("sessions", "frame_results")}
    store = SessionStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # every old row is still there, unchanged in its old columns
        for table, rows in before.items():
            width = len(rows[0])
            assert [r[:width] for r in conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()] == rows
    sessions = store.list_sessions()
    assert len(sessions) == 2 and sessions["participant"].isna().all() and sessions["batch"].isna().all()
    assert sessions["tags"].tolist() == [{}, {}] and sessions["baseline"].isna().all()
    ids = sorted(sessions["id"].astype(int))
    table = csv(export.frames_csv_bytes(store, ids))
    assert len(table) == 30 and table["valence"].notna().all()
    assert csv(export.summary_csv_bytes(store, ids))["markers"].tolist() == [0, 0]
    # the new parts work on the old sessions
    first = ids[0]
    start = store.get_session(first)["started_at"].timestamp()
    store.add_marker(first, "screen 2", start + 0.45)
    store.update_session(first, participant="P1", tags={"condition": "A"},
                         baseline=study.Baseline.first_seconds(0.3).to_dict())
    segs = study.segment_stats(study.session_study(store, first))
    assert set(segs["label"]) == {study.BEFORE_FIRST_MARKER, "screen 2"}
    assert segs["frames"].sum() == len(store.results(first))
    assert len(csv(export.frames_csv_bytes(store, ids))) == 30


# -- markers are durable -------------------------------------------------------------------------------------

KILLED_AFTER_MARKER = """
import core  # noqa: F401
import os, signal, sys
from core.store import SessionStore
store = SessionStore(sys.argv[1])
sid = store.start_session("participant P4", "webcam", {}, {})
writer = store.writer(sid)
marker = store.add_marker(sid, "stimulus 1")
print(sid, marker, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the press returned; nothing else runs: no flush, no atexit
"""


def test_a_marker_survives_a_kill_right_after_the_press_and_a_restart(facesense_home):
    url = f"sqlite:///{facesense_home / 'killed.db'}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))
    run = subprocess.run([sys.executable, "-c", KILLED_AFTER_MARKER, url], capture_output=True, text=True,
                         env=env, cwd=REPO_ROOT, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    sid, marker = map(int, run.stdout.split())
    restarted = SessionStore(url, recover=False)  # the next start of the app
    marks = restarted.markers(sid)
    assert marks["id"].tolist() == [marker] and marks["label"].tolist() == ["stimulus 1"]
    assert restarted.recover(stale_after_s=0) == [sid]  # the session closes as abnormal; its marker stays
    again = SessionStore(url)
    assert again.get_session(sid)["status"] == "ended abnormally"
    assert again.markers(sid)["label"].tolist() == ["stimulus 1"]
    assert csv(export.markers_csv_bytes(again, [sid]))["label"].tolist() == ["stimulus 1"]


def test_live_session_stores_participant_tags_and_markers_at_once():
    """The Live page's path: participant and tags set before START go into the session; a marker
    press is in the store when add_marker returns; tags changed while recording update the session."""
    from core.analyzer import AnalyzerSettings
    from core.live_session import FairGate, LiveSession, StreamSlots

    store = SessionStore()
    live = LiveSession({}, AnalyzerSettings(tasks=()), store_factory=lambda: store, slots=StreamSlots(2),
                       gate=FairGate(1), max_fps=0)
    with pytest.raises(RuntimeError, match="not recording yet"):
        live.add_marker("too early")
    live.set_study("P07", {"condition": "A"})
    live.arm()
    live.analyze(np.zeros((240, 320, 3), np.uint8))
    sid = live.session_id
    info = store.get_session(sid)
    assert (info["participant"], info["tags"]) == ("P07", {"condition": "A"})
    marker = live.add_marker("screen 1")
    assert SessionStore(store.url).markers(sid)["id"].tolist() == [marker]  # another connection sees it now
    with pytest.raises(ValueError, match="needs a label"):
        live.add_marker("  ")
    live.set_study("P07", {"condition": "B"})
    assert store.get_session(sid)["tags"] == {"condition": "B"}
    live.stop()
    assert store.get_session(sid)["status"] == "ended"


def test_export_cli_writes_markers_and_segments(facesense_home, tmp_path):
    store = SessionStore()
    sid = seed_session(store, 60, n_faces=1, start=START)
    store.add_marker(sid, "a", T0 + 0.51)
    assert export.main(["--session", str(sid), "--markers", "--out", str(tmp_path / "m.csv")]) == 0
    assert export.main(["--session", str(sid), "--segments", "--out", str(tmp_path / "s.csv")]) == 0
    assert pd.read_csv(tmp_path / "m.csv")["label"].tolist() == ["a"]
    assert pd.read_csv(tmp_path / "s.csv")["label"].tolist() == [study.BEFORE_FIRST_MARKER, "a"]
    from core.markers import read_markers_csv  # the markers file reads back as a video's --markers input
    assert read_markers_csv(tmp_path / "m.csv") == [(0.51, "a")]
