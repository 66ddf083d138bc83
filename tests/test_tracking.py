"""Face tracking, smoothing and near-search detection: on real webcam frames where it matters."""
from __future__ import annotations

import core  # noqa: F401

import time

import numpy as np
import pytest

from core.analyzer import AnalyzerSettings, FrameAnalyzer
from core.detection import DetectorSettings, make_detector
from core.smoothing import FaceSmoother, RollingMean
from core.tracking import FaceTracker, TrackingSettings, iou, merge_overlapping
from tests.clips import read_frames


def follow(frames, tracking: TrackingSettings | None = None):
    """The analyzer's detection + tracking (no models) over frames: visible and held ids per frame.

    Full scans run in line (not on the background thread) so that results do not depend on
    how fast this machine is; the background scan has its own test."""
    tracking = tracking or TrackingSettings(background_scan=False)
    analyzer = FrameAnalyzer({}, AnalyzerSettings(tasks=(), tracking=tracking))
    visible, held = [], []
    for frame in frames:
        result = analyzer.analyze(frame)
        assert result.error is None, result.error
        visible.append(sorted(f.face_id for f in result.faces))
        held.append(sorted(f.face_id for f in result.held))
    return visible, held


# -- pure geometry -------------------------------------------------------------------------

def test_iou_and_merge():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    kept = merge_overlapping([(0, 0, 10, 10), (1, 1, 10, 10), (30, 30, 10, 10)])
    assert [d.box for d in kept] == [(0, 0, 10, 10), (30, 30, 10, 10)]


def test_tracker_ids_new_person_false_box_and_dropout():
    tracker = FaceTracker(TrackingSettings(min_hits=2, max_missed=3, hold_frames=2, box_smoothing=1.0))
    a, b = (100, 100, 50, 50), (300, 100, 50, 50)
    assert tracker.update([a]).visible == []          # tentative after one detection
    assert [t.id for t in tracker.update([a]).visible] == [1]
    # A one-frame false box never becomes a face and never uses up an ID.
    tracker.update([a, (500, 400, 40, 40)])
    tracker.update([a])
    # A new person gets a new ID; moving a little keeps the old one.
    tracker.update([(104, 102, 50, 50), b])
    update = tracker.update([(108, 104, 50, 50), b])
    assert sorted(t.id for t in update.visible) == [1, 2]
    # Fast motion without overlap but within reach keeps the ID.
    update = tracker.update([(140, 104, 50, 50), b])
    assert sorted(t.id for t in update.visible) == [1, 2]
    # Person 1 missed: held for hold_frames, then kept invisibly, then ended after max_missed.
    assert [t.id for t in tracker.update([b]).held] == [1]
    assert [t.id for t in tracker.update([b]).held] == [1]
    assert tracker.update([b]).held == []
    assert tracker.update([b]).ended == [1]
    # Coming back after the track ended: a new ID.
    tracker.update([(140, 104, 50, 50), b])
    update = tracker.update([(140, 104, 50, 50), b])
    assert sorted(t.id for t in update.visible) == [2, 3]
    tracker.reset()
    tracker.update([a])
    assert [t.id for t in tracker.update([a]).visible] == [1]


# -- real webcam frames --------------------------------------------------------------------

def test_single_face_keeps_one_id():
    frames = read_frames("single_face_640x480.avi", 100, step=3)
    visible, _ = follow(frames)
    ids = {i for ids in visible for i in ids}
    assert ids == {1}
    assert sum(1 for ids in visible if ids == [1]) >= 0.95 * len(frames)


def test_three_people_three_stable_ids():
    # The first ~10 s of the clip: three people in view, moving a little.
    frames = read_frames("multi_face_640x480.avi", 150, step=2)
    visible, held = follow(frames)
    ids = {i for ids in visible for i in ids}
    assert ids == {1, 2, 3}
    for face_id in ids:
        first = next(i for i, v in enumerate(visible) if face_id in v)
        assert first <= 30, f"face {face_id} found only at frame {first}"
        seen = sum(face_id in v or face_id in h for v, h in zip(visible[first:], held[first:]))
        assert seen >= 0.95 * (len(frames) - first), f"face {face_id} shown in only {seen} frames"


def test_face_leaving_and_coming_back():
    frames = read_frames("single_face_640x480.avi", 30)
    empty = np.full_like(frames[0], 128)  # the person left: an empty grey scene
    sequence = frames[:10] + [empty] * 60 + frames[10:30]
    visible, held = follow(sequence, TrackingSettings(max_missed=45, background_scan=False))
    assert visible[9] == [1]
    assert held[10] == [1] and visible[10] == []           # a dropout is held, not dropped
    assert all(v == [] for v in visible[20:70])            # gone: nothing drawn
    assert all(v == [2] for v in visible[72:])             # back: a new ID (no face recognition)


def test_background_scan_finds_a_newcomer():
    frames = read_frames("multi_face_640x480.avi", 40, start=60)
    first = frames[0].copy()
    first[:, 440:] = 128  # the person on the right is not in the first picture
    analyzer = FrameAnalyzer({}, AnalyzerSettings(tasks=(), tracking=TrackingSettings(full_scan_every=5)))
    results = []
    for frame in [first, first] + frames:
        results.append(analyzer.analyze(frame))
        time.sleep(1 / 30)  # a camera's pace: the scan runs while the next frame is awaited
    assert len(results[1].faces) == 2
    found_at = next(i for i, r in enumerate(results) if len(r.faces) == 3)
    assert found_at <= 20, f"newcomer found only at frame {found_at}"
    assert any("scan" in r.timings_ms for r in results)               # reported, not in "total"
    assert {f.face_id for f in results[-1].faces} == {1, 2, 3}


@pytest.mark.parametrize("kind", ["haar", "yunet"])
def test_detect_near_follows_the_full_scan(kind):
    frames = read_frames("multi_face_640x480.avi", 25, step=5)
    detector = make_detector(DetectorSettings(kind=kind, detect_width=0))
    found = total = 0
    for previous, frame in zip(frames, frames[1:]):
        truth = [t.box for t in detector.detect(frame)]
        for face in detector.detect(previous):
            near = detector.detect_near(frame, face.box)
            total += 1
            if near and truth and max(iou(near[0].box, t) for t in truth) > 0.6:
                found += 1
    assert total >= 2 * len(frames)
    assert found >= 0.95 * total
    # Nothing is found where there is no face, and a box outside the frame is harmless.
    assert detector.detect_near(np.full_like(frames[0], 128), (200, 150, 100, 100)) == []
    assert detector.detect_near(frames[0], (-500, -500, 50, 50)) == []


def test_sensitivity_maps_to_min_neighbors():
    assert DetectorSettings.from_sensitivity(0.5).min_neighbors == DetectorSettings().min_neighbors
    assert DetectorSettings.from_sensitivity(1.0).min_neighbors == 2
    assert DetectorSettings.from_sensitivity(0.0).min_neighbors == 8
    assert DetectorSettings.from_sensitivity(7).min_neighbors == 2  # clipped
    assert DetectorSettings.from_sensitivity(0.25, min_face=80, kind="haar").sensitivity == pytest.approx(1 / 3)
    assert DetectorSettings.from_sensitivity(0.25, min_face=80).min_face == 80
    # YuNet: the same scale on its confidence threshold, and back
    assert DetectorSettings.from_sensitivity(0.5).min_confidence == pytest.approx(DetectorSettings().min_confidence)
    assert DetectorSettings.from_sensitivity(1.0).min_confidence == pytest.approx(0.3)
    assert DetectorSettings.from_sensitivity(0.25).sensitivity == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown face detector 'mtcnn'"):
        DetectorSettings(kind="mtcnn")


# -- smoothing -----------------------------------------------------------------------------

def test_rolling_mean_and_face_smoother():
    mean = RollingMean(3)
    for value in (1.0, 2.0, 3.0, 10.0):
        result = mean.add(value)
    assert result == pytest.approx(5.0)
    smoother = FaceSmoother(window=2)
    smoother.smooth(1, "emotion", np.array([1.0, 0.0]))
    np.testing.assert_allclose(smoother.smooth(1, "emotion", np.array([0.0, 1.0])), [0.5, 0.5])
    assert smoother.smooth(2, "age", 30.0) == 30.0              # faces never mix
    smoother.forget([1])
    np.testing.assert_allclose(smoother.smooth(1, "emotion", np.array([0.0, 1.0])), [0.0, 1.0])
    smoother.set_window(0)                                      # off: values pass through
    assert smoother.smooth(2, "age", 50.0) == 50.0
