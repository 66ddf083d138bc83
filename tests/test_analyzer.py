"""FrameAnalyzer and LiveSession on real webcam frames with the shipped models."""
from __future__ import annotations

import core  # noqa: F401

import threading
import time

import numpy as np
import pytest

from core.analyzer import AnalyzerSettings, AttributeSchedule, FrameAnalyzer
from core.config import EMOTIONS, TASKS
from core.live_session import LiveSession
from core.models import ActiveModels
from core.registry import ModelRegistry
from core.store import SessionStore
from tests.clips import read_frames


class CountingModel:
    """A real TaskModel that counts its batched calls (and can fail once, like a bad frame)."""

    def __init__(self, model) -> None:
        self.model = model
        self.spec, self.entry_id, self.task = model.spec, model.entry_id, model.task
        self.batch_sizes: list[int] = []
        self.fail_next = False

    def prepare(self, frame, boxes, landmarks=None):
        return self.model.prepare(frame, boxes, landmarks)

    def predict(self, batch):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected model failure")
        self.batch_sizes.append(len(batch))
        return self.model.predict(batch)


@pytest.fixture(scope="module")
def active_models(tmp_path_factory) -> ActiveModels:
    return ActiveModels(registry=ModelRegistry(tmp_path_factory.mktemp("registry")))


@pytest.fixture
def models(active_models) -> dict[str, CountingModel]:
    return {task: CountingModel(model) for task, model in active_models.get().items()}


@pytest.fixture(scope="module")
def multi_frames() -> list[np.ndarray]:
    return read_frames("multi_face_640x480.avi", 24, step=2, start=30)


def check_plausible(face) -> None:
    assert face.face_id >= 1
    assert face.emotion in EMOTIONS
    assert face.emotion_probs.shape == (len(EMOTIONS),)
    assert face.emotion_probs.sum() == pytest.approx(1.0, abs=1e-3)
    assert face.emotion == EMOTIONS[int(np.argmax(face.emotion_probs))]
    assert 0.0 < face.age < 120.0
    assert 0.0 <= face.gender <= 1.0
    x, y, w, h = face.box
    assert w >= 24 and h >= 24 and x + w > 0 and y + h > 0


def test_three_faces_three_models_one_batch_each(models, multi_frames):
    analyzer = FrameAnalyzer(models, AnalyzerSettings(attribute_every=1, attributes_in_background=False))
    results = [analyzer.process(frame)[1] for frame in multi_frames]
    assert all(r.error is None for r in results)
    assert [r.frame_index for r in results] == list(range(len(multi_frames)))
    late = results[4:]
    assert sum(len(r.faces) == 3 for r in late) >= 0.8 * len(late)
    for result in late:
        for face in result.faces:
            check_plausible(face)
        assert {"detect", "track", "total", "draw"} <= set(result.timings_ms)
        if result.faces:
            assert {"preprocess", *TASKS} <= set(result.timings_ms)
            assert result.timings_ms["total"] >= result.timings_ms["emotion"]
    # One call per model per frame with faces, each over all the frame's faces.
    with_faces = [len(r.faces) for r in results if r.faces]
    for model in models.values():
        assert model.batch_sizes == with_faces
    assert analyzer.model_versions() == {t: m.entry_id for t, m in models.items()}


def test_age_and_gender_are_re_estimated_in_turn_and_held_in_between(models, multi_frames):
    analyzer = FrameAnalyzer(models, AnalyzerSettings(attribute_every=3, attributes_in_background=False))
    with_faces, age_batches = [], []
    for frame in multi_frames:
        calls = len(models["age"].batch_sizes)
        result = analyzer.analyze(frame)
        if result.faces:
            with_faces.append(result)
            age_batches.append(sum(models["age"].batch_sizes[calls:]))
    assert models["emotion"].batch_sizes == [len(r.faces) for r in with_faces]  # emotion: every face, every frame
    assert models["gender"].batch_sizes == models["age"].batch_sizes  # one schedule for both
    seen, previous = set(), {}
    for result, batch in zip(with_faces, age_batches):
        for face in result.faces:
            check_plausible(face)  # every face has an age and a gender on every frame
        new = {f.face_id for f in result.faces} - seen
        seen |= new
        # At most the newcomers plus ceil(3 faces / 3) a frame go through the age network...
        assert batch <= len(new) + 1
        # ...and a face's age only moves on a frame that re-estimated it.
        moved = sum(f.face_id in previous and f.age != previous[f.face_id] for f in result.faces)
        assert moved <= batch - len(new)
        previous = {f.face_id: f.age for f in result.faces}
    faces = sum(len(r.faces) for r in with_faces)
    assert faces / 3 - 6 <= sum(age_batches) <= faces / 2  # each face about every third frame


def test_re_estimates_run_beside_the_frame_path_and_their_failures_fail_one_frame(models, multi_frames):
    analyzer = FrameAnalyzer(models, AnalyzerSettings(attribute_every=3))  # background: the default
    results, seen, ages = [], set(), {}
    for frame in multi_frames:
        result = analyzer.analyze(frame)
        time.sleep(0.02)  # a camera's pace, roughly: the worker finishes between frames
        assert result.error is None
        new = {f.face_id for f in result.faces} - seen
        seen |= new
        for face in result.faces:
            check_plausible(face)  # newcomers too: they are estimated in line
            ages.setdefault(face.face_id, set()).add(face.age)
        if result.faces and not new:
            assert result.timings_ms["age"] == 0.0 and result.timings_ms["gender"] == 0.0  # nothing in line
        results.append(result)
    arrived = [r for r in results if "attributes" in r.timings_ms]
    assert len(arrived) >= len(multi_frames) / 4  # re-estimates came back...
    assert sum(len(values) > 1 for values in ages.values()) >= 3  # ...and moved the faces' ages
    models["age"].fail_next = True  # a background failure fails the frame that collects it, once
    errors = [analyzer.analyze(frame).error for frame in multi_frames[:8] if time.sleep(0.02) is None]
    assert sum(e is not None and "injected model failure" in e for e in errors) == 1
    assert errors[-1] is None


def test_staged_frames_finish_as_analyze_does_with_one_call_per_model(models, multi_frames):
    """A file's path (stage frames, then finish them together) reports what analyze reports
    frame by frame with in-line attributes, but calls each network once per group of frames."""
    settings = AnalyzerSettings(attribute_every=3, attributes_in_background=False)
    one_by_one = FrameAnalyzer(models, settings)
    expected = [one_by_one.analyze(frame, timestamp=i / 30) for i, frame in enumerate(multi_frames)]
    for model in models.values():
        model.batch_sizes.clear()
    staged = FrameAnalyzer(models, settings)
    groups = [multi_frames[:10], multi_frames[10:]]
    got = []
    for start, group in zip((0, 10), groups):
        got += staged.finish([staged.stage(frame, (start + i) / 30) for i, frame in enumerate(group)])
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        assert (a.frame_index, a.timestamp, a.error, b.error) == (b.frame_index, b.timestamp, None, None)
        assert [(f.face_id, f.box, f.emotion) for f in a.faces] == [(f.face_id, f.box, f.emotion) for f in b.faces]
        assert [(f.face_id, f.box) for f in a.held] == [(f.face_id, f.box) for f in b.held]
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.emotion_probs, fb.emotion_probs, atol=1e-4)
            assert (fa.age, fa.gender) == pytest.approx((fb.age, fb.gender), abs=1e-3)
            assert fa.pose == pytest.approx(fb.pose) and fa.detector_confidence == fb.detector_confidence
    faces = [sum(len(r.faces) for r in got[:10]), sum(len(r.faces) for r in got[10:])]
    assert models["emotion"].batch_sizes == [n for n in faces if n]  # one call per group, all its faces
    assert len(models["age"].batch_sizes) <= 2


def test_a_failing_network_fails_its_staged_frames_not_the_next(models, multi_frames):
    analyzer = FrameAnalyzer(models, AnalyzerSettings(attributes_in_background=False))
    models["emotion"].fail_next = True
    failed = analyzer.finish([analyzer.stage(frame, i) for i, frame in enumerate(multi_frames[:6])])
    assert all(r.error is not None and "injected model failure" in r.error for r in failed if r.faces or r.error)
    after = analyzer.finish([analyzer.stage(frame, i) for i, frame in enumerate(multi_frames[6:12])])
    assert all(r.error is None for r in after) and sum(len(r.faces) for r in after) >= 12


def test_attribute_schedule_spreads_faces_that_fall_due_together():
    schedule = AttributeSchedule(every=3)

    def step(frame: int, faces: list[int], failed: bool = False) -> list[int]:
        rows = schedule.due(frame, faces)
        if not failed:
            schedule.estimated(frame, [faces[i] for i in rows])
        return rows

    assert step(0, [1, 2, 3]) == [0, 1, 2]  # newcomers at once
    assert [step(frame, [1, 2, 3]) for frame in range(1, 9)] == [[], [], [0], [1], [2], [0], [1], [2]]
    assert step(9, [2, 3, 4]) == [2]  # newcomer 4 at once; 2 and 3 are not due yet
    assert step(11, [2, 3, 4]) == [0]  # 2 and 3 both due: the longer wait (2's) first
    assert [step(frame, [2, 3, 4]) for frame in (12, 13)] == [[1], [2]]  # one a frame: 3, then 4
    schedule.forget([2])
    assert step(14, [2], failed=True) == [0]  # a face that left and came back is estimated at once...
    assert step(15, [2]) == [0]  # ...and stays due while its frames fail
    assert AttributeSchedule(every=1).due(0, [5, 6]) == [0, 1] and AttributeSchedule(every=0).every == 1


def test_selected_models_and_smoothing(models, multi_frames):
    only_emotion = FrameAnalyzer(models, AnalyzerSettings(tasks=("emotion",)))
    result = [only_emotion.analyze(f) for f in multi_frames[:6]][-1]
    assert result.faces and all(f.age is None and f.gender is None for f in result.faces)
    assert "age" not in result.timings_ms and models["age"].batch_sizes == []

    def emotion_track(window: int) -> np.ndarray:
        """Emotion probabilities of the leftmost person (IDs of faces that appear together are
        handed out in the detector's output order, which OpenCV's threads may vary)."""
        analyzer = FrameAnalyzer(models, AnalyzerSettings(smoothing_window=window))
        probs = []
        for frame in multi_frames:
            faces = analyzer.analyze(frame).faces
            if len(faces) == 3:
                probs.append(min(faces, key=lambda f: f.box[0]).emotion_probs)
        return np.asarray(probs)

    raw, smooth = emotion_track(0), emotion_track(8)
    assert len(raw) == len(smooth) >= 15
    np.testing.assert_allclose(raw[0], smooth[0], atol=1e-5)  # the first frame has nothing to average
    jitter = lambda p: np.abs(np.diff(p, axis=0)).sum()  # noqa: E731
    assert jitter(smooth) < jitter(raw)


def test_bad_frames_are_skipped_counted_and_streaming_goes_on(models, multi_frames):
    analyzer = FrameAnalyzer(models)
    bad = [None, np.zeros((2, 2, 3), np.uint8), np.zeros((480, 640, 3), np.float32),
           np.zeros((480, 640, 4), np.uint8)]
    for frame in bad:
        annotated, result = analyzer.process(frame)
        assert result.error and result.faces == []
    assert analyzer.failed_frames == len(bad)
    for frame in multi_frames[:3]:
        result = analyzer.analyze(frame)
    assert result.error is None and len(result.faces) >= 2
    models["emotion"].fail_next = True                     # a model fails on one frame...
    annotated, result = analyzer.process(multi_frames[3])
    assert "injected model failure" in result.error
    assert annotated is multi_frames[3]                    # ...the frame goes out unannotated
    result = analyzer.analyze(multi_frames[4])             # ...and the next one is fine
    assert result.error is None and result.faces
    assert analyzer.failed_frames == len(bad) + 1


def test_no_face_runs_no_model(models):
    analyzer = FrameAnalyzer(models)
    empty = np.full((480, 640, 3), 90, np.uint8)
    for _ in range(3):
        annotated, result = analyzer.process(empty)
        assert result.error is None and result.faces == [] and result.held == []
    assert np.array_equal(annotated, empty)
    assert all(m.batch_sizes == [] for m in models.values())


def test_overlay_settings_from_another_thread_and_reset(models, multi_frames):
    analyzer = FrameAnalyzer(models)
    for frame in multi_frames[:4]:
        annotated, result = analyzer.process(frame)
    assert not np.array_equal(annotated, multi_frames[3])  # boxes and labels drawn...
    x, y, w, h = result.faces[0].box
    changed = np.any(annotated != multi_frames[3], axis=2)
    assert changed[y:y + h, x:x + w].any()
    assert not changed[y + 4:y + h - 4, x + 4:x + w - 4].all()  # ...around the face, not over it
    worker = threading.Thread(target=analyzer.update_settings, args=(AnalyzerSettings(tasks=("age",)),))
    worker.start()
    worker.join()
    analyzer.reset()
    results = [analyzer.analyze(f) for f in multi_frames[4:8]]
    assert results[0].frame_index == 0
    assert {f.face_id for f in results[-1].faces} <= {1, 2, 3}
    assert all(f.emotion is None and f.age is not None for f in results[-1].faces)


def test_live_session_records_each_start_stop(active_models, multi_frames):
    store = SessionStore()
    live = LiveSession(active_models, store_factory=lambda: store)
    for frame in multi_frames[:3]:             # playing but not armed yet: shown, not recorded
        live.analyze(frame)
    assert store.list_sessions().empty
    for _ in range(2):
        live.arm()
        for frame in multi_frames[:10]:        # the analysis thread's work, here in line
            result = live.analyze(frame)
            assert result.error is None
        stats = live.channel.snapshot()
        assert stats.frames == 10 and stats.failed == 0 and stats.fps > 0 and stats.latency_ms > 0
        assert len(stats.faces) >= 2 and all(f.emotion in EMOTIONS for f in stats.faces)
        session_id = live.stop()
        assert session_id is not None and not live.recording
        assert live.stop() is None             # idempotent
    live.analyze(multi_frames[0])              # a late frame after STOP opens nothing
    sessions = store.list_sessions()
    assert len(sessions) == 2 and set(sessions["status"]) == {"ended"}
    rows = store.results(session_id)
    assert set(rows["frame_index"]) <= set(range(10)) and rows["frame_index"].max() == 9
    assert set(rows["face_id"]) <= {1, 2, 3, 4}
    assert rows["dominant_emotion"].isin(EMOTIONS).all()
    assert rows["age"].between(0, 120).all() and rows["p_female"].between(0, 1).all()
    recorded = store.get_session(session_id)
    assert recorded["source"] == "webcam" and set(recorded["model_versions"]) == set(TASKS)


def test_live_session_survives_a_broken_store(active_models, multi_frames):
    def broken_store():
        raise OSError("disk full")

    live = LiveSession(active_models, store_factory=broken_store)
    live.arm()
    for frame in multi_frames[:3]:
        assert live.analyze(frame).error is None
    assert "disk full" in live.recording_error and not live.recording
    assert live.channel.snapshot().frames == 3


def test_ice_servers_from_text():
    from core.live_session import ice_servers_from_text

    assert ice_servers_from_text("") == []  # host candidates only: loopback and LAN, offline
    text = "stun:stun.example.org:3478\n# comment\n\nturn:turn.example.org:3478 alice s3cret\n"
    assert ice_servers_from_text(text) == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org:3478"], "username": "alice", "credential": "s3cret"},
    ]
    with pytest.raises(ValueError, match="line 1"):
        ice_servers_from_text("http://example.org")
    with pytest.raises(ValueError, match="line 2"):
        ice_servers_from_text("stun:a.org\nturn:b.org onlyuser")


def test_live_session_loads_a_newly_activated_model_off_the_video_thread(tmp_path, multi_frames):
    registry = ModelRegistry(tmp_path / "registry")
    active = ActiveModels(registry=registry, check_every=1)  # would reload at the first get()
    live = LiveSession(active, store_factory=SessionStore)
    assert live.refresh_models() is False                     # nothing changed
    shipped = registry.active("emotion")
    entry = registry.register(shipped.model_path, shipped.card)
    registry.activate("emotion", entry.id)
    for frame in multi_frames[:3]:
        live.analyze(frame)                                    # the analysis thread never reloads
    assert live.analyzer.model_versions()["emotion"] == shipped.id
    assert live.refresh_models() is True                       # the page thread loads it...
    live.analyze(multi_frames[3])                              # ...and the next frame uses it
    assert live.analyzer.model_versions()["emotion"] == entry.id


def test_overlay_labels():
    from core.results import FaceResult
    from core.overlay import face_label_lines

    probs = np.full(len(EMOTIONS), 0.13 / 6, np.float32)
    probs[EMOTIONS.index("happy")] = 0.87
    face = FaceResult(2, (10, 10, 50, 50), probs, "happy", 31.4, 0.82)
    assert face_label_lines(face) == ["#2 happy 87%", "31 y  F 82%"]
    assert face_label_lines(FaceResult(3, (0, 0, 40, 40), None, None, None, 0.3)) == ["#3", "M 70%"]
    assert face_label_lines(FaceResult(4, (0, 0, 40, 40), None, None, None, None)) == ["#4"]


def test_live_channel_rates_over_recent_frames():
    from core.results import FrameResult
    from core.live_channel import LiveChannel

    channel = LiveChannel(window_s=10.0, window_frames=5)
    assert channel.snapshot().fps == 0.0 and channel.snapshot().updated_at is None
    for i in range(8):
        channel.publish(FrameResult(i, 0.0, [], {"total": float(i)}))
        time.sleep(0.05)
    channel.publish(FrameResult(8, 0.0, [], {"total": 1.0}, error="ValueError: bad frame"))
    stats = channel.snapshot()
    assert 8 < stats.fps < 25                      # about 20 frames/s, from the last 5 frames only
    assert stats.latency_ms == pytest.approx(5.0)  # median of 4, 5, 6, 7, 1
    assert stats.frames == 8 and stats.failed == 1 and stats.last_error == "ValueError: bad frame"
