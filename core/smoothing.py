"""Temporal smoothing of each face's predictions.

Per-frame network outputs flicker (a face at the edge of 'happy' and 'neutral' flips
label every frame); averaging each tracked face's last N outputs gives stable labels at
the cost of about N/2 frames of lag. Window 0 (or 1) turns smoothing off.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np


class RollingMean:
    """Mean of the last ``window`` values (arrays or scalars); window <= 1 keeps only the last."""

    def __init__(self, window: int) -> None:
        self._values: deque = deque(maxlen=max(1, int(window)))

    def add(self, value) -> np.ndarray | float:
        self._values.append(np.asarray(value, dtype=np.float64))
        return self.value

    @property
    def value(self) -> np.ndarray | float:
        mean = np.mean(np.stack(self._values), axis=0)
        return float(mean) if mean.ndim == 0 else mean


class FaceSmoother:
    """Rolling means per (face id, output name); forget faces whose tracks ended."""

    def __init__(self, window: int = 5) -> None:
        self.window = max(0, int(window))
        self._means: dict[tuple[int, str], RollingMean] = {}

    def set_window(self, window: int) -> None:
        """Change the window; running means restart (old samples used another window)."""
        window = max(0, int(window))
        if window != self.window:
            self.window = window
            self._means.clear()

    def smooth(self, face_id: int, name: str, value):
        """Add this frame's ``value`` for the face and return the smoothed value."""
        if self.window <= 1:
            return value if np.ndim(value) else float(value)
        key = (face_id, name)
        mean = self._means.get(key)
        if mean is None:
            mean = self._means[key] = RollingMean(self.window)
        return mean.add(value)

    def forget(self, face_ids: Iterable[int]) -> None:
        gone = set(face_ids)
        if gone:
            self._means = {k: v for k, v in self._means.items() if k[0] not in gone}

    def reset(self) -> None:
        self._means.clear()
