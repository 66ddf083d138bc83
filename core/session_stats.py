"""Aggregates of one session for the Statistics page and the CSV summary.

All heavy lifting happens inside the database over the ``(session_id, timestamp)``
index, in three GROUP BY scans at most: per face and dominant emotion
(:func:`face_emotion_counts`, from which the summary, emotion and gender shares
and the per-face table are derived in pandas), per time bucket
(:func:`emotion_timeline`) and per age bin (:func:`age_histogram`). An hour at
30 fps with three faces is ~300k rows; what comes back is a few hundred.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core import tasks
from core.config import EMOTIONS
from core.store import SessionStore
from core.store_schema import EMOTION_COLUMNS, results
from core.study import valence_sql

GENDERS = tuple(reversed(tasks.GENDERS))  # display order: female first
FEMALE_THRESHOLD = tasks.FEMALE_THRESHOLD  # p_female at or above this counts as "female" in shares
COUNT_COLUMNS = ("face_id", "dominant_emotion", "observations", "age_sum", "age_n", "female_n", "gender_n",
                 "first_ts", "last_ts")


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


def _floor_div(expr, size: float, dialect: str):
    """floor(expr / size) as an integer, for non-negative expr (SQLite has no portable floor)."""
    ratio = expr / size
    return sa.cast(ratio if dialect == "sqlite" else sa.func.floor(ratio), sa.Integer)


def _where(session_id: int, face_id: int | None) -> list:
    conds = [results.c.session_id == session_id]
    if face_id is not None:
        conds.append(results.c.face_id == face_id)
    return conds


def face_emotion_counts(store: SessionStore, session_id: int) -> pd.DataFrame:
    """One scan: per (face, dominant emotion) the observations, age and gender sums, first/last time.

    Columns ``COUNT_COLUMNS``; dominant_emotion is None where the emotion model was off.
    """
    female = sa.func.sum(sa.case((results.c.p_female >= FEMALE_THRESHOLD, 1), else_=0))
    query = (sa.select(results.c.face_id, results.c.dominant_emotion, sa.func.count(), sa.func.sum(results.c.age),
                       sa.func.count(results.c.age), female, sa.func.count(results.c.p_female),
                       sa.func.min(results.c.timestamp), sa.func.max(results.c.timestamp))
             .where(results.c.session_id == session_id)
             .group_by(results.c.face_id, results.c.dominant_emotion))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=list(COUNT_COLUMNS))
    ints = {c: int for c in ("face_id", "observations", "age_n", "female_n", "gender_n")}
    return frame.fillna({"age_sum": 0.0, "female_n": 0}).astype({**ints, "age_sum": float})


def _select_face(counts: pd.DataFrame, face_id: int | None) -> pd.DataFrame:
    return counts if face_id is None else counts[counts["face_id"] == face_id]


def emotion_share(counts: pd.DataFrame, face_id: int | None = None) -> pd.DataFrame:
    """How often each emotion was the dominant one: columns emotion, observations, share (all 7 rows)."""
    per = _select_face(counts, face_id).groupby("dominant_emotion")["observations"].sum()
    frame = pd.DataFrame({"emotion": list(EMOTIONS), "observations": [int(per.get(e, 0)) for e in EMOTIONS]})
    total = frame["observations"].sum()
    frame["share"] = frame["observations"] / total if total else 0.0
    return frame


def gender_share(counts: pd.DataFrame, face_id: int | None = None) -> pd.DataFrame:
    """Observations judged female / male (``p_female >= 0.5``): columns gender, observations, share."""
    selected = _select_face(counts, face_id)
    n_female, n_all = int(selected["female_n"].sum()), int(selected["gender_n"].sum())
    frame = pd.DataFrame({"gender": list(GENDERS), "observations": [n_female, n_all - n_female]})
    frame["share"] = frame["observations"] / n_all if n_all else 0.0
    return frame


def faces_table(counts: pd.DataFrame, origin: float) -> pd.DataFrame:
    """One row per face ID: first/last seen (s after ``origin``), observations, mean age, female share
    of its observations, and its most frequent dominant emotion."""
    columns = ["face_id", "first_seen_s", "last_seen_s", "observations", "mean_age", "female_share",
               "dominant_emotion"]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    per = counts.groupby("face_id").agg(first_ts=("first_ts", "min"), last_ts=("last_ts", "max"),
                                        observations=("observations", "sum"), age_sum=("age_sum", "sum"),
                                        age_n=("age_n", "sum"), female_n=("female_n", "sum"),
                                        gender_n=("gender_n", "sum"))
    modes = (counts.dropna(subset=["dominant_emotion"]).sort_values("observations", ascending=False)
             .drop_duplicates("face_id").set_index("face_id")["dominant_emotion"])
    table = pd.DataFrame({
        "face_id": per.index,
        "first_seen_s": per["first_ts"] - origin,
        "last_seen_s": per["last_ts"] - origin,
        "observations": per["observations"],
        "mean_age": per["age_sum"] / per["age_n"].replace(0, np.nan),
        "female_share": per["female_n"] / per["gender_n"].replace(0, np.nan),
        "dominant_emotion": per.index.map(modes),
    })
    return table.reset_index(drop=True)[columns]


def summary(store: SessionStore, session_id: int, counts: pd.DataFrame | None = None) -> SessionSummary:
    """The headline figures of one session (see :class:`SessionSummary`)."""
    info = store.get_session(session_id)
    counts = face_emotion_counts(store, session_id) if counts is None else counts
    shares = emotion_share(counts)
    genders = gender_share(counts)
    has_emotion = shares["observations"].sum() > 0
    age_n = counts["age_n"].sum()
    return SessionSummary(
        session_id=session_id, name=info["name"], source=info["source"], status=info["status"],
        started_at=info["started_at"], ended_at=info["ended_at"], duration_s=float(info["duration_s"]),
        frames=int(info["frame_count"]), frames_with_faces=int(info["face_frame_count"]),
        observations=int(counts["observations"].sum()), faces=int(counts["face_id"].nunique()),
        dominant_emotion=str(shares.loc[shares["observations"].idxmax(), "emotion"]) if has_emotion else None,
        emotion_share=dict(zip(shares["emotion"], shares["share"].astype(float))) if has_emotion else {},
        mean_age=float(counts["age_sum"].sum() / age_n) if age_n else None,
        female_share=float(genders.loc[0, "share"]) if genders["observations"].sum() else None,
        settings=info["settings"], model_versions=info["model_versions"],
    )


def origin(store: SessionStore, session_id: int) -> float:
    """Seconds-since-epoch that charts count from: the session start (or the first row, if earlier)."""
    started = store.get_session(session_id)["started_at"].timestamp()
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(results.c.timestamp))
                             .where(results.c.session_id == session_id)).scalar()
    return started if first is None else min(started, float(first))


def age_histogram(store: SessionStore, session_id: int, face_id: int | None = None,
                  bin_years: float = 5.0) -> pd.DataFrame:
    """Estimated ages in ``bin_years`` bins: columns age_from, age_to, observations (empty bins left out)."""
    bucket = _floor_div(results.c.age, bin_years, store.dialect).label("b")
    query = (sa.select(bucket, sa.func.count().label("n"))
             .where(*_where(session_id, face_id), results.c.age >= 0)
             .group_by(bucket).order_by(bucket))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["b", "observations"])
    frame.insert(0, "age_from", frame.pop("b").astype(float) * bin_years)
    frame.insert(1, "age_to", frame["age_from"] + bin_years)
    return frame.astype({"observations": int})


def emotion_timeline(store: SessionStore, session_id: int, face_id: int | None = None,
                     max_points: int = 600, min_bucket_s: float = 0.1, start: float | None = None) -> pd.DataFrame:
    """Mean emotion probabilities per time bucket, at most ``max_points`` buckets.

    Columns: t_s (bucket centre, seconds since ``start``, default :func:`origin`), one
    column per emotion, valence (the mean of each row's, :mod:`core.study`), observations.
    Buckets without faces are absent (gaps stay gaps). ``attrs["bucket_s"]`` is the bucket width.
    """
    start = origin(store, session_id) if start is None else start
    rel = results.c.timestamp - start
    columns = ["t_s", *EMOTIONS, "valence", "observations"]
    with store.engine.connect() as conn:
        span = conn.execute(sa.select(sa.func.max(results.c.timestamp)).where(*_where(session_id, face_id))).scalar()
        if span is None:
            return pd.DataFrame(columns=columns)
        bucket_s = max(min_bucket_s, max(0.0, float(span) - start) / max_points * 1.0001)
        bucket = _floor_div(rel, bucket_s, store.dialect).label("b")
        rows = conn.execute(
            sa.select(bucket, *(sa.func.avg(results.c[c]) for c in EMOTION_COLUMNS),
                      sa.func.avg(valence_sql(store.dialect)), sa.func.count())
            .where(*_where(session_id, face_id), results.c.p_neutral.is_not(None))
            .group_by(bucket).order_by(bucket)
        ).all()
    frame = pd.DataFrame(rows, columns=["b", *EMOTIONS, "valence", "observations"])
    frame.insert(0, "t_s", (frame.pop("b").astype(float) + 0.5) * bucket_s)
    frame = frame[columns].astype({e: float for e in (*EMOTIONS, "valence")})
    frame.attrs["bucket_s"] = bucket_s
    return frame


def smooth(timeline: pd.DataFrame, window: int, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Centred rolling mean over ``window`` buckets (1 = unchanged) of the emotion columns, or of
    ``columns`` (valence and baseline-relative timelines are smoothed the same way)."""
    if window <= 1 or timeline.empty:
        return timeline
    names = [c for c in (EMOTIONS if columns is None else columns) if c in timeline.columns]
    out = timeline.copy()
    out[names] = out[names].rolling(window, center=True, min_periods=1).mean()
    return out
