"""Keeping one ID per face while it stays in view.

Detectors answer per frame and know nothing about identity; the tracker matches each
frame's boxes to the faces it already follows (by overlap, or by distance for a face
that moved fast), so a person keeps their ID, a newcomer gets a new one, and a face
the detector misses for a few frames is held rather than dropped. There is no face
recognition: a person who leaves for longer than ``max_missed`` frames comes back
under a new ID.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from core.detection import Detection
from core.preprocess import Box, iou  # noqa: F401  (iou: part of this module's API)


@dataclass(frozen=True)
class TrackingSettings:
    """How faces are followed between frames.

    iou_match: least box overlap (IoU) to take a detection as the same face.
    max_missed: frames a face may go undetected before its track ends (1.5 s at 30 fps:
        a head turned away or a hand in front keeps its ID when it comes back near where it was).
    hold_frames: frames a missed face is still reported as held (drawn where it was last seen),
        so a detector dropout does not make the box flicker.
    min_hits: detections before a new track is reported (drops one-frame false boxes).
    box_smoothing: weight of the new box in the displayed box (1.0 = raw detector box).
    full_scan_every: while faces are tracked, scan the whole frame only every N frames and
        search near each tracked face in between (much cheaper); 1 = full scan every frame.
    background_scan: run those periodic full scans on a worker thread (built-in detector
        only), so they never add to a frame's latency; a newcomer then shows a few frames later.
    """

    iou_match: float = 0.3
    max_missed: int = 45
    hold_frames: int = 8
    min_hits: int = 2
    box_smoothing: float = 0.6
    full_scan_every: int = 10
    background_scan: bool = True


def as_detection(found: Detection | Box) -> Detection:
    """A :class:`Detection` from a detector's answer or a bare (x, y, w, h) box."""
    return found if isinstance(found, Detection) else Detection(tuple(int(v) for v in found))


def merge_overlapping(found: Sequence[Detection | Box], threshold: float = 0.4) -> list[Detection]:
    """Drop detections that overlap an earlier kept one by more than ``threshold`` IoU.

    Full scans and per-face searches can report the same face twice; the first report is
    kept (callers list the most trusted source first).
    """
    kept: list[Detection] = []
    for det in map(as_detection, found):
        if all(iou(det.box, other.box) <= threshold for other in kept):
            kept.append(det)
    return kept


@dataclass
class Track:
    """One followed face. ``box`` is smoothed for display; ``detection`` is this frame's raw box
    and ``found`` the detector's whole answer for it (confidence, landmarks), both None when
    missed. ``id`` is 0 while the track is tentative (fewer than ``min_hits`` detections), so
    false boxes that vanish at once never use up an ID."""

    id: int
    box: tuple[float, float, float, float]
    detection: Box | None
    hits: int = 1
    missed: int = 0
    found: Detection | None = None

    @property
    def int_box(self) -> Box:
        return tuple(int(round(v)) for v in self.box)  # type: ignore[return-value]

    @property
    def search_box(self) -> Box:
        """Where to look for this face next: its last raw detection, else its display box."""
        return self.detection or self.int_box


@dataclass
class TrackerUpdate:
    """Result of one frame: faces seen now, faces held (briefly missed), ended track ids."""

    visible: list[Track] = field(default_factory=list)
    held: list[Track] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


def _center_distance(a: Box, b: Box) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


class FaceTracker:
    """Greedy overlap matching with a distance fallback; IDs count up from 1 per session."""

    def __init__(self, settings: TrackingSettings | None = None) -> None:
        self.settings = settings or TrackingSettings()
        self.reset()

    def reset(self) -> None:
        self._tracks: list[Track] = []
        self._ids = itertools.count(1)

    @property
    def tracks(self) -> list[Track]:
        """All live tracks (tentative ones included): where to search next frame."""
        return list(self._tracks)

    def _match(self, detections: Sequence[Box]) -> dict[int, int]:
        """Map track index -> detection index, best overlaps first, then nearest centres."""
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            ref = track.search_box
            for di, det in enumerate(detections):
                overlap = iou(ref, det)
                if overlap >= self.settings.iou_match:
                    pairs.append((2.0 + overlap, ti, di))
                else:
                    # Fast motion, or a face found again after a dropout: no overlap, but
                    # near (the longer it was missed, the farther it may have moved) and of
                    # similar size.
                    size = max(ref[2], ref[3])
                    ratio = det[2] / max(ref[2], 1)
                    distance = _center_distance(ref, det)
                    reach = min(2.0, 0.75 + 0.1 * track.missed) * size
                    if distance < reach and 0.6 < ratio < 1.6:
                        pairs.append((1.0 - distance / size, ti, di))
        matches: dict[int, int] = {}
        used: set[int] = set()
        for _, ti, di in sorted(pairs, reverse=True):
            if ti not in matches and di not in used:
                matches[ti] = di
                used.add(di)
        return matches

    def update(self, found: Sequence[Detection | Box]) -> TrackerUpdate:
        s = self.settings
        answers = [as_detection(f) for f in found]
        detections = [a.box for a in answers]
        matches = self._match(detections)
        out = TrackerUpdate()
        survivors: list[Track] = []
        alpha = min(1.0, max(0.0, s.box_smoothing))
        for ti, track in enumerate(self._tracks):
            if ti in matches:
                det = detections[matches[ti]]
                track.box = tuple(alpha * d + (1 - alpha) * b for d, b in zip(det, track.box))
                track.detection = det
                track.found = answers[matches[ti]]
                track.hits += 1
                track.missed = 0
                survivors.append(track)
                continue
            track.detection = track.found = None
            track.missed += 1
            if track.id == 0:  # tentative and already gone: a false box
                continue
            if track.missed > s.max_missed:
                out.ended.append(track.id)
            else:
                survivors.append(track)
        matched = set(matches.values())
        for di, det in enumerate(detections):
            if di not in matched:
                survivors.append(Track(0, tuple(float(v) for v in det), det, found=answers[di]))
        self._tracks = survivors
        for track in survivors:
            if track.id == 0 and track.hits >= s.min_hits:
                track.id = next(self._ids)
            if track.id and track.missed == 0:
                out.visible.append(track)
            elif track.id and track.missed <= s.hold_frames:
                out.held.append(track)
        return out
