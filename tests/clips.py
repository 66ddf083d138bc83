"""Frames of the shared webcam clips, for tests that need real faces (skip without ../shared)."""
from __future__ import annotations

import cv2
import numpy as np

from tests.conftest import shared_path


def read_frames(name: str, count: int, step: int = 1, start: int = 0) -> list[np.ndarray]:
    """``count`` decoded frames of a shared clip, every ``step``-th from frame ``start``."""
    cap = cv2.VideoCapture(str(shared_path("video", name)))
    frames = []
    try:
        for _ in range(start):
            cap.grab()
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
            for _ in range(step - 1):
                cap.grab()
    finally:
        cap.release()
    assert frames, f"could not decode {name}"
    return frames
