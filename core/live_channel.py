"""Live statistics handed from the video thread to the page, thread-safely.

streamlit-webrtc calls the frame callback on its own worker thread, where no
Streamlit call may run. The callback only *publishes* each result here (a few
appends under a lock); the page *reads* a consistent snapshot whenever it redraws
its panel.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from core.analyzer import FrameResult


@dataclass(frozen=True)
class FaceStatus:
    face_id: int
    emotion: str | None
    confidence: float | None  # probability of ``emotion``
    age: float | None
    gender: float | None      # P(female)


@dataclass(frozen=True)
class LiveStats:
    frames: int = 0                 # frames analysed since the last reset
    failed: int = 0                 # frames skipped because they failed to process
    fps: float = 0.0                # analysed frames per second over the recent frames
    latency_ms: float = 0.0         # median processing time per frame over the recent frames
    latency_p95_ms: float = 0.0
    faces: tuple[FaceStatus, ...] = ()
    last_error: str | None = None
    updated_at: float | None = None  # time.time() of the last frame

    @property
    def age_s(self) -> float | None:
        """Seconds since the last frame (None before the first)."""
        return None if self.updated_at is None else max(0.0, time.time() - self.updated_at)


class LiveChannel:
    """Aggregates published frame results into :class:`LiveStats` over the recent frames:
    the last ``window_frames`` of at most ``window_s`` seconds (a slow stream still shows
    its true, low rate instead of 0)."""

    def __init__(self, window_s: float = 10.0, window_frames: int = 60) -> None:
        self.window_s = window_s
        self.window_frames = window_frames
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._times: deque[float] = deque()
            self._latencies: deque[float] = deque()
            self._frames = 0
            self._failed = 0
            self._faces: tuple[FaceStatus, ...] = ()
            self._last_error: str | None = None
            self._updated_at: float | None = None

    def publish(self, result: "FrameResult") -> None:
        """Called from the video thread once per processed frame."""
        now = time.monotonic()
        faces = tuple(
            FaceStatus(
                f.face_id, f.emotion,
                None if f.emotion_probs is None else float(np.max(f.emotion_probs)),
                f.age, f.gender,
            )
            for f in result.faces
        )
        with self._lock:
            self._times.append(now)
            self._latencies.append(float(result.timings_ms.get("total", 0.0)))
            while self._times and (now - self._times[0] > self.window_s
                                   or len(self._times) > self.window_frames):
                self._times.popleft()
                self._latencies.popleft()
            if result.error is None:
                self._frames += 1
                self._faces = faces
            else:
                self._failed += 1
                self._last_error = result.error
            self._updated_at = time.time()

    def snapshot(self) -> LiveStats:
        """A consistent copy for the page (any thread)."""
        with self._lock:
            times = list(self._times)
            latencies = np.asarray(self._latencies, dtype=np.float64)
            span = times[-1] - times[0] if len(times) > 1 else 0.0
            fps = (len(times) - 1) / span if span > 0 else 0.0
            return LiveStats(
                frames=self._frames,
                failed=self._failed,
                fps=fps,
                latency_ms=float(np.median(latencies)) if latencies.size else 0.0,
                latency_p95_ms=float(np.percentile(latencies, 95)) if latencies.size else 0.0,
                faces=self._faces,
                last_error=self._last_error,
                updated_at=self._updated_at,
            )
