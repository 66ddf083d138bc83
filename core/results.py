"""What the analyzer reports per face and per frame: the one shape the overlay, the store, the
live channel and the exports read. A leaf module (numpy only), so none of them needs the analyzer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaceResult:
    face_id: int                          # stable while the person stays in view
    box: tuple[int, int, int, int]        # x, y, w, h in frame pixels
    emotion_probs: np.ndarray | None      # (7,) smoothed, EMOTIONS order; None if emotion model off
    emotion: str | None                   # argmax name
    age: float | None                     # years, smoothed
    gender: float | None                  # P(female) in [0,1], smoothed
    detector_confidence: float | None = None  # the detector's, 0-1, this frame (None: Haar gives none)
    pose: tuple[float, float, float] | None = None  # yaw, pitch, roll in degrees (None: no landmarks)


@dataclass
class FrameResult:
    frame_index: int
    timestamp: float                      # seconds since the epoch (video files: session start + position)
    faces: list[FaceResult]
    timings_ms: dict[str, float]          # per stage: detect, track, preprocess, emotion, age, gender, draw,
    #                                       total (this frame's path); scan: a background full scan that
    #                                       finished since the last frame (ran in parallel, not in total)
    error: str | None = None              # set when the frame failed to process (frame skipped, not fatal)
    held: list[FaceResult] = field(default_factory=list)  # tracked faces missed this frame: drawn, not analysed
