"""Seed a session store with plausible recorded sessions (tests and the statistics benchmark).

The rows go through the real write path (``SessionStore.writer``) as real
``core.analyzer.FrameResult`` objects; only the numbers are synthetic: each face
drifts through the emotions (a random walk in logit space), keeps an age and a
gender with some jitter, and face 2 (when present) leaves for the middle fifth.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import numpy as np

from core.results import FaceResult, FrameResult
from core.config import EMOTIONS
from core.store import SessionStore


def synthetic_results(n_frames: int, n_faces: int = 3, fps: float = 30.0, start: datetime | None = None,
                      seed: int = 0) -> Iterator[FrameResult]:
    rng = np.random.default_rng(seed)
    start_s = (start or datetime.now(timezone.utc)).timestamp()
    steps = rng.normal(0.0, 0.08, size=(n_frames, n_faces, len(EMOTIONS)))
    logits = np.cumsum(steps, axis=0) + rng.normal(0.0, 1.0, size=(1, n_faces, len(EMOTIONS)))
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    ages = rng.uniform(18, 70, size=n_faces)
    females = rng.uniform(0.05, 0.95, size=n_faces)
    away = range(int(n_frames * 0.4), int(n_frames * 0.6))
    for i in range(n_frames):
        faces = []
        for j in range(n_faces):
            if j == 2 and i in away:
                continue
            p = probs[i, j].astype(np.float32)
            faces.append(FaceResult(
                face_id=j + 1, box=(40 + 200 * j, 120, 110, 110), emotion_probs=p,
                emotion=EMOTIONS[int(np.argmax(p))], age=float(ages[j] + rng.normal(0, 1.5)),
                gender=float(np.clip(females[j] + rng.normal(0, 0.05), 0, 1)),
            ))
        yield FrameResult(frame_index=i, timestamp=start_s + i / fps, faces=faces, timings_ms={})


def seed_session(store: SessionStore, n_frames: int, n_faces: int = 3, fps: float = 30.0, name: str = "seeded",
                 source: str = "webcam", start: datetime | None = None, seed: int = 0) -> int:
    """Record one ended session of ``n_frames`` frames; returns its id."""
    start = start or datetime.now(timezone.utc) - timedelta(seconds=n_frames / fps + 60)
    session_id = store.start_session(name, source, {"fps": fps, "seed": seed},
                                     {"emotion": "synthetic", "age": "synthetic", "gender": "synthetic"},
                                     started_at=start)
    with store.writer(session_id, batch_rows=20_000) as writer:
        for result in synthetic_results(n_frames, n_faces, fps, start, seed):
            writer.add(result)
    store.end_session(session_id, ended_at=start + timedelta(seconds=n_frames / fps))
    return session_id
