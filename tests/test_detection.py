"""The CNN face detector (YuNet), alignment by its landmarks, head pose, and the Haar fallback."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

import core.detection as detection
from core.analyzer import AnalyzerSettings, FrameAnalyzer
from core.detection import Detection, DetectorSettings, HaarFaceDetector, YuNetFaceDetector, make_detector
from core.pose import head_pose
from core.preprocess import FaceSpec, eye_angle, iou, preprocess_face
from tests.clips import read_frames

DATA = Path(__file__).resolve().parent / "data"


def rotate(frame: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned about its centre (counter-clockwise for positive degrees) and the 2x3 map."""
    h, w = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), matrix


def frontal(faces: list[Detection]) -> Detection:
    """The largest face that looks into the camera (eyes far apart for its box: not a profile)
    and lies well inside the frame (a turn of the frame keeps it whole)."""
    return max((d for d in faces if np.hypot(*(d.landmarks[1] - d.landmarks[0])) > 0.35 * d.box[2]
                and d.box[0] > 80 and d.box[1] > 40 and d.box[0] + d.box[2] < 560 and d.box[1] + d.box[3] < 440),
               key=lambda d: d.box[2])


def test_yunet_finds_every_face_of_the_shared_clips_with_confidence_and_landmarks():
    detector = make_detector()
    assert isinstance(detector, YuNetFaceDetector)
    for name, people in (("single_face_640x480.avi", 1), ("multi_face_640x480.avi", 3)):
        frames = read_frames(name, 20, step=15)
        counts = [len(detector.detect(frame)) for frame in frames]
        assert np.mean([c == people for c in counts]) >= 0.9, (name, counts)
    face = detector.detect(frames[0])[0]
    assert 0.6 <= face.confidence <= 1.0 and face.landmarks.shape == (5, 2)
    x, y, w, h = face.box
    inside = (face.landmarks[:, 0] >= x) & (face.landmarks[:, 0] <= x + w) \
        & (face.landmarks[:, 1] >= y) & (face.landmarks[:, 1] <= y + h)
    assert inside.all()  # eyes, nose and mouth corners lie in the face box
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image left-to-right order
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert detector.detect(np.full_like(frames[0], 128)) == []


def test_yunet_boxes_agree_with_haars_on_frontal_faces():
    """Both detectors box the same faces; YuNet's box is narrower than Haar's square and reaches
    further down (chin), so boxes agree by their centres and widths rather than exactly. The
    few Haar boxes with no YuNet box are Haar's false boxes (a patch of white wall here)."""
    yunet = make_detector(DetectorSettings(kind="yunet", detect_width=0))
    haar = make_detector(DetectorSettings(kind="haar"))
    pairs = unmatched = 0
    for frame in read_frames("multi_face_640x480.avi", 15, step=20):
        cnn = [d.box for d in yunet.detect(frame)]
        for hx, hy, hw, hh in (d.box for d in haar.detect(frame)):
            best = max(cnn, key=lambda b: iou(b, (hx, hy, hw, hh)))
            if iou(best, (hx, hy, hw, hh)) < 0.3:
                unmatched += 1
                continue
            bx, by, bw, bh = best
            assert abs((bx + bw / 2) - (hx + hw / 2)) < 0.15 * hw and 0.6 < bw / hw < 1.1
            pairs += 1
    assert pairs >= 30 and unmatched <= 0.1 * pairs


def test_yunet_detects_from_several_threads_at_once():
    """The background scan and the frame path call the same detector code in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    frames = read_frames("multi_face_640x480.avi", 8, step=10)
    detector = make_detector()
    alone = [[d.box for d in detector.detect(f)] for f in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: [d.box for d in detector.detect(f)], frames * 3))
    assert together == alone * 3


def test_yunet_runs_without_the_gil_and_answers_as_yuface_does():
    """The detector calls libfacedetection through ctypes, which lets other Python threads run
    (yuface's binding holds the GIL for a whole scan); its rows equal the binding's."""
    from yuface.yuface import detect as bound_detect

    raw, _ = detection._load_yunet()
    assert raw is not bound_detect
    for frame in read_frames("multi_face_640x480.avi", 6, step=40):
        x, y, w, h = make_detector().detect(frame)[0].box
        window = frame[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]  # a near search's
        for image in (frame, cv2.resize(frame, (320, 240)), np.ascontiguousarray(window)):
            ours, theirs = np.asarray(raw(image)), np.asarray(bound_detect(image)).reshape(-1, 16)
            assert ours.shape == theirs.shape and len(ours) > 0
            np.testing.assert_array_equal(ours[:, :15], theirs[:, :15])  # the 16th value is the binding's padding


def test_near_search_returns_the_known_face_only():
    detector = make_detector()
    frames = read_frames("multi_face_640x480.avi", 10, step=10)
    for previous, frame in zip(frames, frames[1:]):
        for face in detector.detect(previous):
            near = detector.detect_near(frame, face.box)
            assert len(near) == 1 and iou(near[0].box, face.box) > 0.5
            assert near[0].landmarks is not None and near[0].confidence >= 0.6


def test_aligned_crop_of_a_turned_face_matches_the_upright_one():
    """Alignment turns a face upright by its eyes: the crop of a face turned by 15-20 degrees is
    closer to the upright face's crop than the plain box crop of the turned face is.

    YuNet's eye landmarks follow a turn only in part (measured on these faces: 8-21 degrees
    for a 15-20 degree turn of a 170 px face, 3 degrees for a 44 px face), so an aligned crop
    takes out most of a head's roll, not all of it.
    """
    detector = make_detector(DetectorSettings(detect_width=0))
    spec = FaceSpec(64, 3, 0.1, align=True)
    plain = FaceSpec(64, 3, 0.1)
    aligned_gap, plain_gap, followed = [], [], []
    for frame in read_frames("single_face_640x480.avi", 4, step=60) + read_frames("multi_face_640x480.avi", 2, step=60):
        face = frontal(detector.detect(frame))
        upright = preprocess_face(frame, spec, face.box, face.landmarks).astype(float)
        for degrees in (15, -20):
            turned, matrix = rotate(frame, degrees)
            centre = matrix @ [face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2, 1]
            found = min(detector.detect(turned), key=lambda d: np.hypot(d.box[0] + d.box[2] / 2 - centre[0],
                                                                          d.box[1] + d.box[3] / 2 - centre[1]))
            # the landmarks turned with the face (the image turned counter-clockwise: the eye line's angle falls)
            followed.append(-np.degrees(eye_angle(found.landmarks) - eye_angle(face.landmarks)) / degrees)
            inner = slice(12, 52)  # the face itself, not the background the turn brings in
            aligned = preprocess_face(turned, spec, found.box, found.landmarks)[inner, inner]
            aligned_gap.append(np.abs(aligned - upright[inner, inner]).mean())
            plain_crop = preprocess_face(turned, plain, found.box)[inner, inner]
            plain_gap.append(np.abs(plain_crop - upright[inner, inner]).mean())
    assert np.median(followed) > 0.6 and np.mean(np.array(followed) > 0) == 1.0, followed
    assert np.mean(aligned_gap) < 0.85 * np.mean(plain_gap), (aligned_gap, plain_gap)


def test_aligned_crop_equals_the_plain_crop_for_level_eyes():
    frame = read_frames("single_face_640x480.avi", 1)[0]
    box = (250, 120, 120, 150)
    level = np.float32([[280, 180], [340, 180], [310, 210], [285, 240], [335, 240]])
    for spec in (FaceSpec(48, 1, 0.1, align=True), FaceSpec(64, 3, 0.0, align=True)):
        aligned = preprocess_face(frame, spec, box, level).astype(float)
        plain = preprocess_face(frame, FaceSpec(spec.size, spec.channels, spec.margin), box).astype(float)
        assert np.abs(aligned - plain).mean() < 3.0  # only interpolation differs
    # eyes steeper than a head turns (swapped landmarks) are not trusted: the plain crop
    swapped = level[[1, 0, 2, 3, 4]] + np.float32([0, 1])
    spec = FaceSpec(64, 3, 0.1, align=True)
    np.testing.assert_array_equal(preprocess_face(frame, spec, box, swapped),
                                  preprocess_face(frame, FaceSpec(64, 3, 0.1), box))


def test_head_pose_from_landmarks():
    detector = make_detector(DetectorSettings(detect_width=0))
    frame = read_frames("multi_face_640x480.avi", 1)[0]
    face = frontal(detector.detect(frame))
    yaw, pitch, roll = head_pose(face.landmarks, frame.shape)
    assert abs(roll) < 10
    for degrees in (15, -15):
        turned, matrix = rotate(frame, degrees)
        marks = (matrix[:, :2] @ face.landmarks.T).T + matrix[:, 2]
        t_yaw, t_pitch, t_roll = head_pose(marks, turned.shape)
        assert abs((t_roll - roll) + degrees) < 3  # the image turned counter-clockwise: roll falls
        assert abs(t_yaw - yaw) < 8 and abs(t_pitch - pitch) < 8
    mirrored = face.landmarks[[1, 0, 2, 4, 3]] * np.float32([-1, 1]) + np.float32([frame.shape[1], 0])
    m_yaw, _, m_roll = head_pose(mirrored, frame.shape)
    assert abs(m_yaw + yaw) < 3 and abs(m_roll + roll) < 3  # a mirror image turns the other way


def test_analyzer_reports_confidence_and_pose_per_face():
    analyzer = FrameAnalyzer({}, AnalyzerSettings(tasks=()))
    results = [analyzer.analyze(f) for f in read_frames("multi_face_640x480.avi", 6)]
    faces = results[-1].faces
    assert len(faces) == 3
    for face in faces:
        assert 0.6 <= face.detector_confidence <= 1.0
        assert len(face.pose) == 3 and all(abs(v) <= 90 for v in face.pose)
    recorded = analyzer.settings.to_dict()["detector"]
    assert recorded["kind"] == "yunet" and recorded["min_confidence"] == 0.6


def test_haar_fallback_when_the_cnn_cannot_be_imported(monkeypatch):
    def missing():
        raise ImportError("No module named 'yuface'")

    monkeypatch.setattr(detection, "_load_yunet", missing)
    monkeypatch.setattr(detection, "_notice", None)
    detector = make_detector(DetectorSettings(kind="yunet"))
    assert isinstance(detector, HaarFaceDetector)
    notice = detection.detector_notice()
    assert "cannot be loaded" in notice and "Haar" in notice
    make_detector()  # said once, not per call
    assert detection.detector_notice() == notice
    analyzer = FrameAnalyzer({}, AnalyzerSettings(tasks=()))
    faces = [analyzer.analyze(f) for f in read_frames("multi_face_640x480.avi", 8)][-1].faces
    assert len(faces) >= 2
    assert all(f.detector_confidence is None and f.pose is None for f in faces)
    # the session records the detector that ran, not the one asked for
    assert analyzer.settings.to_dict()["detector"]["kind"] == "haar"


def test_detection_maps_back_from_a_scaled_window():
    face = Detection((10, 20, 30, 40), 0.9, np.float32([[15, 30]] * 5))
    back = face.shifted(100, 50, scale=0.5)
    assert back.box == (120, 90, 60, 80) and back.confidence == 0.9
    np.testing.assert_allclose(back.landmarks[0], [130, 110])


def test_a_database_written_before_the_cnn_detector_upgrades_and_exports(facesense_home):
    """A store written by the previous version (tests/data: its SQLite dump, made with that
    version's code) opens in place, keeps its sessions and rows, and exports the new columns empty."""
    import pandas as pd

    from core.export import FRAME_COLUMNS, write_frames_csv
    from core.store import SessionStore

    path = facesense_home / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / "store_before_cnn_detector.sql").read_text())
    store = SessionStore(f"sqlite:///{path}")
    sessions = store.list_sessions()
    assert sorted(sessions["name"]) == ["Lecture video", "Live before the CNN detector"]
    rows = store.results(int(sessions["id"].min()))
    assert len(rows) == 12 and rows["age"].notna().all()
    assert rows[["detector_confidence", "yaw", "pitch", "roll"]].isna().all().all()
    out = facesense_home / "old.csv"
    with out.open("w") as handle:
        assert write_frames_csv(store, list(sessions["id"]), handle) == 18
    table = pd.read_csv(out)
    assert list(table.columns) == list(FRAME_COLUMNS)
    new = list(table.columns[list(table.columns).index("gender") + 1:])  # appended after the older columns
    assert new[:4] == ["detector_confidence", "yaw", "pitch", "roll"]
    assert table[["detector_confidence", "yaw", "pitch", "roll"]].isna().all().all()
    # and new rows in the upgraded database carry them
    from core.results import FaceResult, FrameResult

    session = store.start_session("after the upgrade", "webcam", {}, {})
    with store.writer(session) as writer:
        writer.add(FrameResult(0, 1767225700.0, [FaceResult(1, (0, 0, 50, 60), None, None, 30.0, 0.4, 0.91,
                                                            (12.5, -3.0, 4.25))], {"total": 1.0}))
    new = store.results(session)
    stored = new[["detector_confidence", "yaw", "pitch", "roll"]].iloc[0].tolist()
    assert stored == pytest.approx([0.91, 12.5, -3.0, 4.25])


def test_the_app_says_once_when_it_falls_back_to_haar(monkeypatch):
    from streamlit.testing.v1 import AppTest

    def missing():
        raise ImportError("No module named 'yuface'")

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    assert not at.exception and not at.toast  # YuNet is here: nothing to say
    monkeypatch.setattr(detection, "_load_yunet", missing)
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("Haar cascade" in t.value for t in at.toast)
    at.run()  # the next rerun of the same browser session: not again
    assert not any("Haar cascade" in t.value for t in at.toast)
