"""Live statistics handed from the video and analysis threads to the page, thread-safely.

streamlit-webrtc calls the frame callback on its own worker thread, where no Streamlit
call may run; analysis runs on the tab's own analysis thread (:mod:`core.live_session`).
Both only *publish* here (a few appends under a lock): the callback counts every video
frame it returns (:meth:`LiveChannel.video_frame`), the analysis thread every analysed
frame (:meth:`LiveChannel.publish`); the page *reads* a consistent snapshot whenever it
redraws its panel. The two rates differ on purpose: the video runs at the camera's rate,
analysis at what the machine can afford.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from core.results import FrameResult
from core.study import valence_of



@dataclass(frozen=True)
class FaceStatus:
    face_id: int
    emotion: str | None
    confidence: float | None  # probability of ``emotion``
    age: float | None
    gender: float | None      # P(female)
    detector_confidence: float | None = None  # the face detector's score, 0-1 (None: Haar gives none)
    pose: tuple[float, float, float] | None = None  # yaw, pitch, roll in degrees (None: no landmarks)
    analysed_fps: float = 0.0  # analysed frames per second that contained this face (recent frames)
    valence: float | None = None  # p_happy - max(p_angry, p_disgust, p_fear, p_sad) of the smoothed probs


@dataclass(frozen=True)
class LiveStats:
    frames: int = 0                 # frames analysed since the last reset
    failed: int = 0                 # frames skipped because they failed to process
    fps: float = 0.0                # analysed frames per second over the recent frames
    latency_ms: float = 0.0         # median processing time per analysed frame over the recent frames
    latency_p95_ms: float = 0.0
    faces: tuple[FaceStatus, ...] = ()
    last_error: str | None = None
    updated_at: float | None = None  # time.time() of the last analysed frame
    video_frames: int = 0           # frames the video callback returned since the last reset
    video_fps: float = 0.0          # video frames per second over the recent frames
    overlay_lag_ms: float = 0.0     # median age of the analysis drawn on a video frame (capture to capture)
    overlay_lag_p95_ms: float = 0.0
    delay_ms: float = 0.0           # median time from a frame's capture to its analysis being ready
    delay_p95_ms: float = 0.0
    video_updated_at: float | None = None  # time.time() of the last video frame
    valence_history: tuple[tuple[float, int, float], ...] = ()  # (time.time(), face id, valence), last minute

    @property
    def analysed_fps(self) -> float:
        return self.fps

    @property
    def age_s(self) -> float | None:
        """Seconds since the last video frame, or the last analysed one (None before the first)."""
        last = self.video_updated_at if self.video_updated_at is not None else self.updated_at
        return None if last is None else max(0.0, time.time() - last)


def _rate(times) -> float:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def _median_p95(values) -> tuple[float, float]:
    data = np.asarray(values, dtype=np.float64)
    if not data.size:
        return 0.0, 0.0
    return float(np.median(data)), float(np.percentile(data, 95))


class LiveChannel:
    """Aggregates published results into :class:`LiveStats` over the recent frames: the last
    ``window_frames`` analysed frames (``video_window_frames`` video frames) of at most
    ``window_s`` seconds (a slow stream still shows its true, low rate instead of 0)."""

    def __init__(self, window_s: float = 10.0, window_frames: int = 60, video_window_frames: int = 150,
                 valence_window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.valence_window_s = valence_window_s
        self.window_frames = window_frames
        self.video_window_frames = video_window_frames
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._times: deque[float] = deque()
            self._latencies: deque[float] = deque()
            self._delays: deque[float] = deque()
            self._face_times: dict[int, deque[float]] = {}
            self._frames = 0
            self._failed = 0
            self._faces: tuple[FaceStatus, ...] = ()
            self._last_error: str | None = None
            self._updated_at: float | None = None
            self._video_times: deque[float] = deque()
            self._lags: deque[float] = deque()
            self._video_frames = 0
            self._video_updated_at: float | None = None
            self._valence: deque[tuple[float, int, float]] = deque()

    def _trim(self, times: deque, now: float, limit: int, *paired: deque) -> None:
        while times and (now - times[0] > self.window_s or len(times) > limit):
            times.popleft()
            for other in paired:
                if other:
                    other.popleft()

    def video_frame(self, overlay_lag_s: float | None = None) -> None:
        """Called from the video callback once per returned frame; ``overlay_lag_s``: how much
        older the analysed frame whose boxes were drawn on it is (None: nothing drawn)."""
        now = time.monotonic()
        with self._lock:
            self._video_times.append(now)
            self._lags.append(np.nan if overlay_lag_s is None else 1000.0 * overlay_lag_s)
            self._trim(self._video_times, now, self.video_window_frames, self._lags)
            self._video_frames += 1
            self._video_updated_at = time.time()

    def publish(self, result: FrameResult, delay_s: float | None = None) -> None:
        """Called once per analysed frame; ``delay_s``: from its capture to this call."""
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._latencies.append(float(result.timings_ms.get("total", 0.0)))
            self._delays.append(np.nan if delay_s is None else 1000.0 * delay_s)
            self._trim(self._times, now, self.window_frames, self._latencies, self._delays)
            if result.error is None:
                self._frames += 1
                for face in result.faces:
                    self._face_times.setdefault(face.face_id, deque()).append(now)
                for face_id in list(self._face_times):
                    times = self._face_times[face_id]
                    self._trim(times, now, self.window_frames)
                    if not times:
                        del self._face_times[face_id]
                self._faces = tuple(
                    FaceStatus(
                        f.face_id, f.emotion,
                        None if f.emotion_probs is None else float(np.max(f.emotion_probs)),
                        f.age, f.gender,
                        getattr(f, "detector_confidence", None), getattr(f, "pose", None),
                        _rate(self._face_times.get(f.face_id, ())),
                        valence_of(f.emotion_probs),
                    )
                    for f in result.faces
                )
                stamp = time.time()
                self._valence.extend((stamp, f.face_id, f.valence) for f in self._faces if f.valence is not None)
                while self._valence and stamp - self._valence[0][0] > self.valence_window_s:
                    self._valence.popleft()
            else:
                self._failed += 1
                self._last_error = result.error
            self._updated_at = time.time()

    def snapshot(self) -> LiveStats:
        """A consistent copy for the page (any thread)."""
        with self._lock:
            latency = _median_p95(self._latencies)
            delays = [d for d in self._delays if not np.isnan(d)]
            lags = [d for d in self._lags if not np.isnan(d)]
            delay, lag = _median_p95(delays), _median_p95(lags)
            return LiveStats(
                frames=self._frames,
                failed=self._failed,
                fps=_rate(self._times),
                latency_ms=latency[0],
                latency_p95_ms=latency[1],
                faces=self._faces,
                last_error=self._last_error,
                updated_at=self._updated_at,
                video_frames=self._video_frames,
                video_fps=_rate(self._video_times),
                overlay_lag_ms=lag[0],
                overlay_lag_p95_ms=lag[1],
                delay_ms=delay[0],
                delay_p95_ms=delay[1],
                video_updated_at=self._video_updated_at,
                valence_history=tuple(self._valence),
            )
