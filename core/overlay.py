"""Drawing the analysis onto the video: a box per face with its ID, emotion, age and gender.

Each face ID keeps one colour so a viewer can follow people; faces the detector missed
for a moment (held by the tracker) are drawn with a thin box so nothing flickers.
:class:`MovingOverlay` keeps the latest analysis for the live video: it is drawn on every
camera frame while analysis runs beside the video at its own, lower rate.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Iterable

import cv2
import numpy as np

from core.results import FaceResult
from core.tasks import gender_of

# Distinct, readable BGR colours (Tableau 10), cycled by face ID.
PALETTE = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (34, 189, 188), (207, 190, 23), (127, 127, 127),
)


@dataclass(frozen=True)
class OverlayStyle:
    font_scale: float = 0.5
    thickness: int = 2
    held_thickness: int = 1
    padding: int = 3


def face_color(face_id: int) -> tuple[int, int, int]:
    return PALETTE[(face_id - 1) % len(PALETTE)]


def face_label_lines(face: FaceResult) -> list[str]:
    """Text shown above a face, e.g. ``['#2 happy 87%', '31 y  F 82%']``."""
    first = f"#{face.face_id}"
    if face.emotion is not None and face.emotion_probs is not None:
        first += f" {face.emotion} {100 * float(np.max(face.emotion_probs)):.0f}%"
    second = []
    if face.age is not None:
        second.append(f"{face.age:.0f} y")
    if face.gender is not None:
        second.append(gender_text(face.gender))
    return [first] + (["  ".join(second)] if second else [])


def gender_text(p_female: float, short: bool = True) -> str:
    """The likelier gender with its probability: ``F 82%`` (or ``female 82%``)."""
    name = gender_of(p_female)
    female = name == "female"
    name = name[0].upper() if short else name
    return f"{name} {100 * (p_female if female else 1 - p_female):.0f}%"


def _draw_label(frame: np.ndarray, lines: list[str], x: int, y: int, bottom: int,
                color: tuple[int, int, int], style: OverlayStyle) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, style.font_scale, 1) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + style.padding
    block_h = line_h * len(lines) + style.padding
    block_w = max(w for (w, _), _ in sizes) + 2 * style.padding
    top = y - block_h if y - block_h >= 0 else min(bottom, frame.shape[0] - block_h)
    left = min(max(0, x), max(0, frame.shape[1] - block_w))
    cv2.rectangle(frame, (left, top), (left + block_w, top + block_h), color, cv2.FILLED)
    for i, line in enumerate(lines):
        baseline_y = top + (i + 1) * line_h - style.padding
        cv2.putText(frame, line, (left + style.padding, baseline_y), font, style.font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)


def draw_faces(frame: np.ndarray, faces: Iterable[FaceResult], held: Iterable[FaceResult] = (),
               style: OverlayStyle | None = None) -> np.ndarray:
    """Draw boxes and labels onto ``frame`` in place and return it."""
    style = style or OverlayStyle()
    for face_list, thickness in ((held, style.held_thickness), (faces, style.thickness)):
        for face in face_list:
            x, y, w, h = face.box
            color = face_color(face.face_id)
            cv2.rectangle(frame, (x, y), (x + w, y + h), color, thickness)
            _draw_label(frame, face_label_lines(face), x, y, y + h, color, style)
    return frame


class MovingOverlay:
    """The latest analysis, drawn on every video frame between analyses (thread-safe).

    Analysis runs slower than the camera and a little behind it, so each face's box is
    moved by its recent velocity (px/s, from its last two analysed boxes, smoothed) for the
    time between the analysed frame's capture and the frame being drawn, at most
    ``max_extrapolate_s``. An analysis older than ``max_age_s`` is not drawn: boxes from a
    stalled analysis would point at faces that have moved on.
    """

    def __init__(self, max_age_s: float = 1.5, max_extrapolate_s: float = 0.3, smoothing: float = 0.5) -> None:
        self.max_age_s = max_age_s
        self.max_extrapolate_s = max_extrapolate_s
        self.smoothing = smoothing
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._result = None
            self._boxes: dict[int, tuple[float, np.ndarray]] = {}   # id -> (timestamp, x y w h)
            self._velocity: dict[int, np.ndarray] = {}              # id -> px/s of x y w h

    def update(self, result) -> None:
        """Analysis thread: a new :class:`~core.analyzer.FrameResult` (failed ones are ignored)."""
        if result.error is not None:
            return
        t = float(result.timestamp)
        with self._lock:
            boxes, velocity = {}, {}
            for face in list(result.faces) + list(result.held):
                box = np.asarray(face.box, dtype=np.float64)
                boxes[face.face_id] = (t, box)
                previous = self._boxes.get(face.face_id)
                if previous is not None and t - previous[0] > 1e-3:
                    measured = (box - previous[1]) / (t - previous[0])
                    old = self._velocity.get(face.face_id)
                    velocity[face.face_id] = measured if old is None else \
                        self.smoothing * old + (1 - self.smoothing) * measured
            self._result, self._boxes, self._velocity = result, boxes, velocity

    def faces_at(self, t: float):
        """(faces, held, the analysed frame's capture time) to draw on a frame captured at ``t``,
        or None when there is nothing current to draw."""
        with self._lock:
            result, velocity = self._result, dict(self._velocity)
        if result is None or t - result.timestamp > self.max_age_s or not (result.faces or result.held):
            return None
        dt = min(max(0.0, t - result.timestamp), self.max_extrapolate_s)

        def moved(face):
            v = velocity.get(face.face_id)
            if v is None or dt == 0.0:
                return face
            x, y, w, h = np.asarray(face.box, dtype=np.float64) + v * dt
            return replace(face, box=(int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))))

        return [moved(f) for f in result.faces], [moved(f) for f in result.held], float(result.timestamp)

    def draw(self, frame: np.ndarray, t: float) -> float | None:
        """Draw the current boxes onto ``frame`` (in place); returns the drawn analysis' capture
        time, or None when nothing was drawn (the frame is untouched)."""
        found = self.faces_at(t)
        if found is None:
            return None
        faces, held, timestamp = found
        draw_faces(frame, faces, held)
        return timestamp
