"""Face detection behind a small interface, OpenCV's Haar cascade by default.

Detectors take a BGR frame and return face boxes in that frame's pixel
coordinates. ``HaarFaceDetector`` can detect on a downscaled copy (much faster
on 640x480 webcam frames) and maps the boxes back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.preprocess import Box


class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(frame_bgr) -> list of (x, y, w, h)``."""

    def detect(self, frame: np.ndarray) -> list[Box]: ...


@dataclass(frozen=True)
class DetectorSettings:
    """scale_factor/min_neighbors trade recall against false boxes (sensitivity);
    min_face is in full-frame pixels; detect_width downsizes wider frames first (0 = never)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: int = 48
    detect_width: int = 320


def haar_cascade_path(name: str = "haarcascade_frontalface_default.xml") -> Path:
    path = Path(cv2.data.haarcascades) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"OpenCV's Haar cascade {name} is missing ({path}); install opencv-python-headless<5, "
            "which still bundles the cascades"
        )
    return path


class HaarFaceDetector:
    """OpenCV Viola-Jones frontal-face detector (bundled with opencv-python-headless<5)."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._cascade = cv2.CascadeClassifier(str(haar_cascade_path()))
        if self._cascade.empty():
            raise RuntimeError("OpenCV could not load the Haar face cascade")

    def detect(self, frame: np.ndarray) -> list[Box]:
        s = self.settings
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        scale = 1.0
        if s.detect_width and gray.shape[1] > s.detect_width:
            scale = s.detect_width / gray.shape[1]
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(8, int(round(s.min_face * scale)))
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors, minSize=(min_side, min_side)
        )
        return [tuple(int(round(v / scale)) for v in box) for box in np.asarray(found).reshape(-1, 4)]
