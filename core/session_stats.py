"""Aggregates of one session for the Statistics page and the CSV summary.

Every function aggregates inside the database (GROUP BY over the
``(session_id, timestamp)`` index) and returns a small DataFrame: an hour at
30 fps with three faces is ~300k rows, but a chart needs a few hundred points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.config import EMOTIONS
from core.store import SessionStore
from core.store_schema import EMOTION_COLUMNS, results

GENDERS = ("female", "male")
FEMALE_THRESHOLD = 0.5  # p_female at or above this counts as "female" in shares


@dataclass(frozen=True)
class SessionSummary:
    """Headline figures of a session; shares are over face observations (one face in one frame)."""

    session_id: int
    name: str
    source: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    frames: int  # frames analysed, with or without faces
    frames_with_faces: int
    observations: int  # stored rows: faces x frames
    faces: int  # distinct face IDs
    dominant_emotion: str | None
    emotion_share: dict[str, float] = field(default_factory=dict)
    mean_age: float | None = None
    female_share: float | None = None
    settings: dict = field(default_factory=dict)
    model_versions: dict = field(default_factory=dict)


def _where(session_id: int, face_id: int | None) -> list:
    conds = [results.c.session_id == session_id]
    if face_id is not None:
        conds.append(results.c.face_id == face_id)
    return conds


def _floor_div(expr, size: float, dialect: str):
    """floor(expr / size) as an integer, for non-negative expr (SQLite has no portable floor)."""
    ratio = expr / size
    return sa.cast(ratio if dialect == "sqlite" else sa.func.floor(ratio), sa.Integer)


def _scalar_or_none(value) -> float | None:
    return None if value is None else float(value)


def emotion_share(store: SessionStore, session_id: int, face_id: int | None = None) -> pd.DataFrame:
    """How often each emotion was the dominant one: columns emotion, observations, share (all 7 rows)."""
    query = (sa.select(results.c.dominant_emotion, sa.func.count().label("n"))
             .where(*_where(session_id, face_id), results.c.dominant_emotion.is_not(None))
             .group_by(results.c.dominant_emotion))
    with store.engine.connect() as conn:
        counts = dict(conn.execute(query).all())
    frame = pd.DataFrame({"emotion": list(EMOTIONS), "observations": [int(counts.get(e, 0)) for e in EMOTIONS]})
    total = frame["observations"].sum()
    frame["share"] = frame["observations"] / total if total else 0.0
    return frame


def gender_share(store: SessionStore, session_id: int, face_id: int | None = None) -> pd.DataFrame:
    """Observations judged female / male (``p_female >= 0.5``): columns gender, observations, share."""
    female = sa.func.sum(sa.case((results.c.p_female >= FEMALE_THRESHOLD, 1), else_=0))
    query = sa.select(female, sa.func.count(results.c.p_female)).where(*_where(session_id, face_id))
    with store.engine.connect() as conn:
        n_female, n_all = conn.execute(query).one()
    n_female, n_all = int(n_female or 0), int(n_all or 0)
    frame = pd.DataFrame({"gender": list(GENDERS), "observations": [n_female, n_all - n_female]})
    frame["share"] = frame["observations"] / n_all if n_all else 0.0
    return frame


def age_histogram(store: SessionStore, session_id: int, face_id: int | None = None,
                  bin_years: float = 5.0) -> pd.DataFrame:
    """Estimated ages in ``bin_years`` bins: columns age_from, age_to, observations (empty bins left out)."""
    bucket = _floor_div(sa.func.max(results.c.age, 0.0) if store.dialect == "sqlite"
                        else sa.func.greatest(results.c.age, 0.0), bin_years, store.dialect).label("b")
    query = (sa.select(bucket, sa.func.count().label("n"))
             .where(*_where(session_id, face_id), results.c.age.is_not(None))
             .group_by(bucket).order_by(bucket))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["b", "observations"])
    frame.insert(0, "age_from", frame.pop("b").astype(float) * bin_years)
    frame.insert(1, "age_to", frame["age_from"] + bin_years)
    return frame.astype({"observations": int})


def _origin(store: SessionStore, session_id: int) -> float:
    """Seconds-since-epoch that charts count from: the session start (or the first row, if earlier)."""
    started = store.get_session(session_id)["started_at"].timestamp()
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(results.c.timestamp))
                             .where(results.c.session_id == session_id)).scalar()
    return started if first is None else min(started, float(first))


def emotion_timeline(store: SessionStore, session_id: int, face_id: int | None = None,
                     max_points: int = 600, min_bucket_s: float = 0.1) -> pd.DataFrame:
    """Mean emotion probabilities per time bucket, at most ``max_points`` buckets.

    Columns: t_s (bucket centre, seconds since the session start), one column
    per emotion, observations. Buckets without faces are absent (gaps stay gaps).
    """
    origin = _origin(store, session_id)
    rel = results.c.timestamp - origin
    with store.engine.connect() as conn:
        span = conn.execute(sa.select(sa.func.max(rel)).where(*_where(session_id, face_id))).scalar()
    columns = ["t_s", *EMOTIONS, "observations"]
    if span is None:
        return pd.DataFrame(columns=columns)
    bucket_s = max(min_bucket_s, float(span) / max_points * 1.0001)
    bucket = _floor_div(rel, bucket_s, store.dialect).label("b")
    query = (sa.select(bucket, *(sa.func.avg(results.c[c]) for c in EMOTION_COLUMNS), sa.func.count())
             .where(*_where(session_id, face_id), results.c.p_neutral.is_not(None))
             .group_by(bucket).order_by(bucket))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["b", *EMOTIONS, "observations"])
    frame.insert(0, "t_s", (frame.pop("b").astype(float) + 0.5) * bucket_s)
    frame = frame[columns].astype({e: float for e in EMOTIONS})
    frame.attrs["bucket_s"] = bucket_s
    return frame


def smooth(timeline: pd.DataFrame, window: int) -> pd.DataFrame:
    """Centred rolling mean of the emotion columns over ``window`` buckets (1 = unchanged)."""
    if window <= 1 or timeline.empty:
        return timeline
    out = timeline.copy()
    out[list(EMOTIONS)] = out[list(EMOTIONS)].rolling(window, center=True, min_periods=1).mean()
    return out


def faces_table(store: SessionStore, session_id: int) -> pd.DataFrame:
    """One row per face ID: first/last seen (s since start), observations, mean age, mean p_female,
    and its most frequent dominant emotion."""
    origin = _origin(store, session_id)
    query = (sa.select(results.c.face_id, sa.func.min(results.c.timestamp) - origin,
                       sa.func.max(results.c.timestamp) - origin, sa.func.count(),
                       sa.func.avg(results.c.age), sa.func.avg(results.c.p_female))
             .where(results.c.session_id == session_id).group_by(results.c.face_id).order_by(results.c.face_id))
    modes = (sa.select(results.c.face_id, results.c.dominant_emotion, sa.func.count())
             .where(results.c.session_id == session_id, results.c.dominant_emotion.is_not(None))
             .group_by(results.c.face_id, results.c.dominant_emotion))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
        mode_rows = conn.execute(modes).all()
    frame = pd.DataFrame(rows, columns=["face_id", "first_seen_s", "last_seen_s", "observations",
                                        "mean_age", "mean_p_female"])
    dominant: dict[int, str] = {}
    if mode_rows:
        counts = pd.DataFrame(mode_rows, columns=["face_id", "emotion", "n"])
        best = counts.sort_values(["face_id", "n"], ascending=[True, False]).drop_duplicates("face_id")
        dominant = dict(zip(best["face_id"], best["emotion"]))
    frame["dominant_emotion"] = frame["face_id"].map(dominant)
    return frame


def summary(store: SessionStore, session_id: int) -> SessionSummary:
    """The headline figures of one session (see :class:`SessionSummary`)."""
    info = store.get_session(session_id)
    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(results.c.face_id)),
                      sa.func.count(sa.distinct(results.c.frame_index)), sa.func.avg(results.c.age)
                      ).where(results.c.session_id == session_id)
    with store.engine.connect() as conn:
        observations, faces, frames_with_faces, mean_age = conn.execute(query).one()
    shares = emotion_share(store, session_id)
    genders = gender_share(store, session_id)
    has_emotion = shares["observations"].sum() > 0
    return SessionSummary(
        session_id=session_id, name=info["name"], source=info["source"], status=info["status"],
        started_at=info["started_at"], ended_at=info["ended_at"], duration_s=float(info["duration_s"]),
        frames=int(info["frame_count"]), frames_with_faces=int(frames_with_faces), observations=int(observations),
        faces=int(faces),
        dominant_emotion=str(shares.loc[shares["observations"].idxmax(), "emotion"]) if has_emotion else None,
        emotion_share=dict(zip(shares["emotion"], shares["share"].astype(float))) if has_emotion else {},
        mean_age=_scalar_or_none(mean_age),
        female_share=float(genders.loc[0, "share"]) if genders["observations"].sum() else None,
        settings=info["settings"], model_versions=info["model_versions"],
    )


def default_smoothing(timeline: pd.DataFrame) -> int:
    """About a second of smoothing, whatever the bucket size (at least 1 bucket)."""
    bucket_s = timeline.attrs.get("bucket_s", 1.0)
    return int(np.clip(round(1.0 / bucket_s), 1, 25))
