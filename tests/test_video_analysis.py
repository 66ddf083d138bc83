"""Video-file analysis with the real analyzer and shipped models on the real 3-face clip."""
import core  # noqa: F401  (first: safe native-library import order)

import threading
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import shared_path
from core.analyzer import FrameAnalyzer
from core.models import ActiveModels
from core.store import SessionStore
from core.video_analysis import VIDEO_SUFFIXES, VideoError, analyze_video, iter_frames, main, probe

CONTAINERS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx", ".avi": "mpeg4"}


@pytest.fixture(scope="module")
def clip() -> Path:
    return shared_path("video", "multi_face_640x480.avi")


@pytest.fixture(scope="module")
def analyzer() -> FrameAnalyzer:
    return FrameAnalyzer(ActiveModels())


@pytest.fixture(scope="module")
def analysed(clip, analyzer, tmp_path_factory):
    """The whole clip analysed once; the tests below look at different sides of the result."""
    url = f"sqlite:///{tmp_path_factory.mktemp('video') / 'facesense.db'}"
    progress: list[float] = []
    run = analyze_video(clip, analyzer, SessionStore(url), progress=progress.append)
    print(f"\n{clip.name}: {run.frames} frames, {run.video_s:.1f} s of video in {run.wall_s:.1f} s "
          f"= {run.frames / run.wall_s:.1f} fps, speed-up {run.speedup:.2f}x real time")
    return run, SessionStore(url), progress


def test_three_stable_face_ids(analysed):
    run, store, _ = analysed
    assert run.session_id is not None and run.failed_frames == 0
    rows = store.results(run.session_id).sort_values(["face_id", "frame_index"])
    id_sets = Counter(rows.groupby("frame_index")["face_id"].apply(frozenset))
    print(f"frames per face ID: {rows['face_id'].value_counts().to_dict()}; ID sets: {id_sets.most_common(4)}")
    (ids, frames), = id_sets.most_common(1)
    assert len(ids) == 3 and frames > 0.5 * run.frames  # the same 3 IDs in most frames
    faces_per_frame = rows.groupby("frame_index").size().reindex(range(run.frames), fill_value=0)
    assert (faces_per_frame == 3).mean() >= 0.8  # all three people found in most frames
    lifetimes = rows.groupby("face_id")["frame_index"].nunique()
    # No face recognition: a long dropout gives a new ID. Short-lived IDs (under a second) must stay
    # rare: under CPU load the count of re-acquired IDs was seen to vary (5 to 9), their rows did not.
    lasting = lifetimes[lifetimes >= 30].index
    assert rows["face_id"].isin(lasting).mean() >= 0.95, lifetimes.to_dict()
    for face_id, face in rows.groupby("face_id"):  # an ID never jumps to another person
        cx, cy = face["box_x"] + face["box_w"] / 2, face["box_y"] + face["box_h"] / 2
        step = np.hypot(cx.diff(), cy.diff()) / face["box_w"]
        # (YuNet follows a person walking fast through the room: up to 0.71 box widths a frame
        # there; a jump to another person is at least 1.5)
        assert step[face["frame_index"].diff() == 1].max() < 1.0, face_id


def test_session_is_complete_and_charts_like_live(analysed, clip):
    run, store, progress = analysed
    info = store.get_session(run.session_id)
    assert (info["source"], info["status"], info["name"]) == ("video", "ended", clip.stem)
    assert info["source_path"] == str(clip)
    assert info["frame_count"] == run.frames == probe(clip).frames
    assert info["duration_s"] == pytest.approx(probe(clip).duration_s, abs=0.1)
    assert info["settings"]["video"]["fps"] == pytest.approx(30.0)
    assert info["settings"]["analyzer"]["tracking"]["background_scan"] is False  # files: in-line scans
    assert set(info["model_versions"]) == {"emotion", "age", "gender"}
    rows = store.results(run.session_id)
    elapsed = rows["timestamp"] - info["started_at"].timestamp()
    assert (elapsed - rows["frame_index"] / 30.0).abs().max() < 1e-3  # session start + position in the file
    assert elapsed.max() <= info["duration_s"]
    assert rows[["p_angry", "age", "p_female"]].notna().all().all()
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 10


def test_cancel_deletes_the_half_session(clip, analyzer):
    store = SessionStore()
    cancel = threading.Event()
    run = analyze_video(clip, analyzer, store, progress=lambda f: cancel.set(), cancel=cancel)
    assert run.cancelled and run.session_id is None and 0 < run.frames < 702
    assert store.list_sessions().empty


@pytest.mark.parametrize("content, suffix, message", [
    (b"", ".mp4", "cannot read"),
    (b"\x1a\x45\xdf\xa3 this is no matroska file" * 50, ".mkv", "cannot read"),
    (b"hello", ".txt", "unsupported file type"),
    (None, ".avi", "not found"),
])
def test_unreadable_files_fail_before_a_session_exists(tmp_path, analyzer, content, suffix, message):
    path = tmp_path / f"odd name, ü{suffix}"
    if content is not None:
        path.write_bytes(content)
    store = SessionStore()
    with pytest.raises(VideoError, match=message):
        analyze_video(path, analyzer, store)
    assert store.list_sessions().empty


def test_truncated_file_errors_and_leaves_no_session(clip, analyzer, tmp_path):
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 20])
    store = SessionStore()
    with pytest.raises(VideoError, match="damaged or truncated"):
        analyze_video(truncated, analyzer, store)
    assert store.list_sessions().empty


def transcode(source: Path, target: Path, codec: str, frames: int = 30) -> None:
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = dst.add_stream(codec, rate=Fraction(30, 1))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx" else {}
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            for packet in stream.encode(frame.reformat(width=320, height=240, format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES)
def test_every_supported_container_decodes(clip, tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    transcode(clip, path, CONTAINERS[suffix])
    info = probe(path)
    decoded = list(iter_frames(info))
    assert len(decoded) == 30 and info.fps == pytest.approx(30.0, rel=0.01)
    assert decoded[0][1].shape == (240, 320, 3)
    positions = [p for p, _ in decoded]
    assert positions == sorted(positions) and positions[-1] == pytest.approx(29 / 30, abs=0.01)


def test_upload_is_named_after_the_users_file(clip, analyzer, tmp_path):
    temp_copy = tmp_path / "tmpx8e2k1.mp4"
    transcode(clip, temp_copy, "libx264", frames=20)
    store = SessionStore()
    run = analyze_video(temp_copy, analyzer, store, source_label="Lecture 3, part (1).mp4")
    info = store.get_session(run.session_id)
    assert (info["name"], info["source_path"]) == ("Lecture 3, part (1)", "Lecture 3, part (1).mp4")
    assert info["settings"]["video"]["file"] == "Lecture 3, part (1).mp4" and run.frames == 20


def test_cli_prints_frames_fps_and_speedup(clip, tmp_path, capsys):
    short = tmp_path / "short clip.mp4"
    transcode(clip, short, "libx264", frames=20)
    assert main([str(short), "--name", "cli run"]) == 0
    out = capsys.readouterr().out
    assert "30.00 fps, 20 frames" in out and "session 1: 20 frames (0 failed)" in out
    assert "speed-up" in out and "x real time" in out
    assert SessionStore().list_sessions()["name"].tolist() == ["cli run"]
    assert main([str(tmp_path / "nope.mp4")]) == 2
    assert "error: video file not found" in capsys.readouterr().out
