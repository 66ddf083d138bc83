"""Studies: valence, marker segments, a neutral baseline per face and group comparisons.

A session becomes a study when it carries event markers (a marker starts a
segment that lasts until the next one), a participant label and ``key=value``
tags, and a neutral baseline. All of it is plain pandas/SQL so the Statistics
page, the CSV export and the tests compute the same numbers.

Definitions (docs/analytics.md):

- **valence** of a face in a frame = ``p_happy - max(p_angry, p_disgust, p_fear, p_sad)``
  (Noldus FaceReader's), in [-1, 1]; computed from the stored probabilities, which the
  analyzer already smoothed, so valence is smoothed the same way.
- **segments**: marker *k* opens segment *k*, which ends at marker *k+1* (the last at the
  session's end). Frames before the first marker form the segment ``(before first marker)``.
  A frame belongs to the segment with ``start <= t < end`` (the last segment includes its end).
- **face found share**: the face's frames in the segment over the frames analysed in it. Frames
  without any face are not stored, so their times are interpolated from the frame numbers
  (frame ``i`` of a session is its ``i``-th analysed frame, ``0 .. frame_count-1``).
- **baseline**: the first N seconds, or one marker segment; each face's mean probabilities and
  valence over it. ``*_vs_baseline`` values are the face's value minus that mean (empty for a
  face not seen during the baseline).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.config import EMOTIONS
from core.store import SessionStore
from core.store_schema import EMOTION_COLUMNS, results

log = logging.getLogger(__name__)

NEGATIVE_EMOTIONS = ("angry", "disgust", "fear", "sad")
NEGATIVE_COLUMNS = tuple(f"p_{e}" for e in NEGATIVE_EMOTIONS)
MEASURES = (*EMOTION_COLUMNS, "valence")  # what means, baselines and group comparisons are over
VS_BASELINE = "_vs_baseline"
RELATIVE_COLUMNS = tuple(f"{m}{VS_BASELINE}" for m in MEASURES)
BEFORE_FIRST_MARKER = "(before first marker)"
SEGMENT_COLUMNS = ("segment", "marker_id", "label", "start_s", "end_s", "duration_s")
SEGMENT_STAT_COLUMNS = (
    *SEGMENT_COLUMNS, "face_id", "frames", "frames_in_segment", "face_found_share", *EMOTION_COLUMNS,
    "dominant_emotion", "valence", *RELATIVE_COLUMNS,
)
ROW_COLUMNS = ("timestamp", "frame_index", "face_id", *EMOTION_COLUMNS)
GROUP_KEYS_FIXED = ("participant", "batch")  # group-by keys besides the tags ("tag:<name>")
NOT_SET = "(not set)"


class StudyError(ValueError):
    """A baseline or grouping the user chose cannot be applied (the message says why)."""


# -- valence ---------------------------------------------------------------------------------

def valence(frame: pd.DataFrame) -> pd.Series:
    """Per row: ``p_happy`` minus the largest negative probability; NaN where emotion was not measured."""
    negative = frame[list(NEGATIVE_COLUMNS)].astype(float)
    value = frame["p_happy"].astype(float) - negative.max(axis=1, skipna=False)
    return value.rename("valence")


def valence_of(probs: Iterable[float] | None) -> float | None:
    """Valence of one face's probabilities in ``EMOTIONS`` order (the Live panel); None when absent."""
    if probs is None:
        return None
    p = dict(zip(EMOTIONS, (float(x) for x in probs)))
    value = p["happy"] - max(p[e] for e in NEGATIVE_EMOTIONS)
    return value if math.isfinite(value) else None


def valence_sql(dialect: str):
    """The valence of a ``frame_results`` row as an SQL expression (NULL when emotion is NULL)."""
    greatest = sa.func.max if dialect == "sqlite" else sa.func.greatest  # SQLite's scalar max(a, b, ...)
    return results.c.p_happy - greatest(*(results.c[c] for c in NEGATIVE_COLUMNS))


# -- rows and frames -----------------------------------------------------------------------------

def load_rows(store: SessionStore, session_id: int) -> pd.DataFrame:
    """The columns studies need of every face row (time order), with ``valence`` added."""
    query = (sa.select(*(results.c[c] for c in ROW_COLUMNS)).where(results.c.session_id == session_id)
             .order_by(results.c.timestamp, results.c.frame_index, results.c.face_id))
    with store.engine.connect() as conn:
        rows = pd.read_sql(query, conn)
    rows = rows.astype({c: float for c in ("timestamp", *EMOTION_COLUMNS)})
    rows["valence"] = valence(rows)
    return rows


def frame_times(rows: pd.DataFrame, frame_count: int) -> pd.Series:
    """Epoch time of every analysed frame (index: frame number), faceless frames interpolated.

    Stored rows give the times of frames with a face; the others (not stored) are placed by
    their frame number between their neighbours, or extrapolated at the same pace at the ends.
    """
    known = rows.groupby("frame_index")["timestamp"].min() if len(rows) else pd.Series(dtype=float)
    if known.empty:
        return known
    last = max(int(frame_count) - 1, int(known.index.max()))
    index = np.arange(min(0, int(known.index.min())), last + 1)
    x, y = known.index.to_numpy(dtype=float), known.to_numpy(dtype=float)
    times = np.interp(index, x, y)
    if len(x) > 1:
        pace = (y[-1] - y[0]) / (x[-1] - x[0])
        times = np.where(index < x[0], y[0] - (x[0] - index) * pace, times)
        times = np.where(index > x[-1], y[-1] + (index - x[-1]) * pace, times)
    else:  # one known frame: the others cannot be placed; keep that one only
        index, times = x.astype(int), y
    return pd.Series(times, index=pd.Index(index, name="frame_index"), name="timestamp")


# -- segments --------------------------------------------------------------------------------

def segments(markers: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """Segments of a session from its markers (columns ``SEGMENT_COLUMNS``; times in s after ``start``).

    Segment 0 is :data:`BEFORE_FIRST_MARKER` when the first marker comes after the start;
    no markers, no segments.
    """
    if markers is None or markers.empty:
        return pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    marks = markers.sort_values(["timestamp", "id"])
    starts = (marks["timestamp"].to_numpy(dtype=float) - start).tolist()
    ids: list[Any] = marks["id"].astype(int).tolist()
    labels = marks["label"].astype(str).tolist()
    end_s = max(float(end - start), starts[-1])
    if starts[0] > 0:
        starts, ids, labels = [0.0, *starts], [None, *ids], [BEFORE_FIRST_MARKER, *labels]
    ends = [*starts[1:], end_s]
    frame = pd.DataFrame({"segment": range(len(starts)), "marker_id": pd.array(ids, dtype="Int64"),
                          "label": labels, "start_s": starts, "end_s": ends})
    frame["duration_s"] = frame["end_s"] - frame["start_s"]
    return frame[list(SEGMENT_COLUMNS)]


def segment_of(elapsed_s: pd.Series | np.ndarray, segs: pd.DataFrame) -> np.ndarray:
    """Segment number of each time (s after the start); -1 outside every segment."""
    elapsed = np.asarray(elapsed_s, dtype=float)
    if segs.empty:
        return np.full(elapsed.shape, -1)
    starts = segs["start_s"].to_numpy(dtype=float)
    found = np.searchsorted(starts, elapsed, side="right") - 1
    # zero-length segments share a start: searchsorted picks the last of them, which is right
    end = float(segs["end_s"].iloc[-1])
    found = np.where((elapsed < starts[0]) | (elapsed > end), -1, found)
    return found


# -- baseline --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    """The neutral baseline of a session: ``first_seconds`` (``seconds``) or ``segment``
    (``marker_id``, or ``label`` for the segment before the first marker). Stored as JSON."""

    kind: str
    seconds: float | None = None
    marker_id: int | None = None
    label: str | None = None

    KINDS = ("first_seconds", "segment")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise StudyError(f"baseline kind must be one of {', '.join(self.KINDS)}, not {self.kind!r}")
        if self.kind == "first_seconds" and not (self.seconds is not None and math.isfinite(self.seconds)
                                                  and self.seconds > 0):
            raise StudyError(f"a baseline of the first N seconds needs N > 0, not {self.seconds!r}")
        if self.kind == "segment" and self.marker_id is None and not self.label:
            raise StudyError("a segment baseline needs a marker (or the segment before the first marker)")

    @classmethod
    def first_seconds(cls, seconds: float) -> "Baseline":
        return cls("first_seconds", seconds=float(seconds))

    @classmethod
    def segment(cls, marker_id: int | None, label: str | None = None) -> "Baseline":
        return cls("segment", marker_id=None if marker_id is None else int(marker_id), label=label)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Baseline | None":
        if not data:
            return None
        return cls(kind=data.get("kind"), seconds=data.get("seconds"), marker_id=data.get("marker_id"),
                   label=data.get("label"))

    def to_dict(self) -> dict:
        return {k: v for k, v in (("kind", self.kind), ("seconds", self.seconds), ("marker_id", self.marker_id),
                                  ("label", self.label)) if v is not None}

    def describe(self) -> str:
        if self.kind == "first_seconds":
            return f"first {self.seconds:g} s"
        return f"segment “{self.label}”" if self.label else f"segment of marker #{self.marker_id}"

    def window(self, segs: pd.DataFrame) -> tuple[float, float]:
        """``(from_s, to_s)`` after the session start; :class:`StudyError` if its marker is gone."""
        if self.kind == "first_seconds":
            return 0.0, float(self.seconds)
        match = segs[segs["marker_id"] == self.marker_id] if self.marker_id is not None else segs.iloc[:0]
        if match.empty and self.marker_id is None:
            match = segs[segs["label"] == self.label]
        if match.empty:
            raise StudyError(f"the baseline {self.describe()} no longer exists (its marker was deleted or "
                             "moved); choose another baseline")
        row = match.iloc[0]
        return float(row["start_s"]), float(row["end_s"])


def face_means(store: SessionStore, session_id: int, window: tuple[float, float] | None = None,
               start: float | None = None) -> pd.DataFrame:
    """Per face: observations and mean ``MEASURES``, in SQL; optionally only ``window`` (s after ``start``).

    Index ``face_id``. The window is half-open ``[from, to)``.
    """
    conds = [results.c.session_id == session_id]
    if window is not None:
        conds += [results.c.timestamp >= start + window[0], results.c.timestamp < start + window[1]]
    query = (sa.select(results.c.face_id, sa.func.count(),
                       *(sa.func.avg(results.c[c]) for c in EMOTION_COLUMNS),
                       sa.func.avg(valence_sql(store.dialect)))
             .where(*conds).group_by(results.c.face_id).order_by(results.c.face_id))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["face_id", "observations", *MEASURES])
    return frame.astype({"face_id": int, "observations": int, **{m: float for m in MEASURES}}).set_index("face_id")


def relative(rows: pd.DataFrame, means: pd.DataFrame | None) -> pd.DataFrame:
    """``RELATIVE_COLUMNS`` for each row: its value minus its face's baseline mean (NaN: no baseline)."""
    out = pd.DataFrame(index=rows.index, columns=list(RELATIVE_COLUMNS), dtype=float)
    if means is None or means.empty or rows.empty:
        return out
    base = means.reindex(rows["face_id"].to_numpy())
    for measure, column in zip(MEASURES, RELATIVE_COLUMNS):
        out[column] = rows[measure].to_numpy(dtype=float) - base[measure].to_numpy(dtype=float)
    return out


# -- one session as a study ------------------------------------------------------------------------

@dataclass
class SessionStudy:
    """Everything the study views need of one session, loaded once (the page caches it)."""

    session_id: int
    start: float                      # epoch s that times count from: the session's start
    end: float                        # its end (or the newest frame while recording)
    frame_count: int
    rows: pd.DataFrame                # load_rows(), plus RELATIVE_COLUMNS
    markers: pd.DataFrame             # store.markers()
    segments: pd.DataFrame
    baseline: Baseline | None
    baseline_means: pd.DataFrame | None  # per face (face_means over the baseline window)
    baseline_error: str | None = None

    @property
    def elapsed(self) -> pd.Series:
        return self.rows["timestamp"] - self.start


def _timing(info: dict, newest: float | None) -> tuple[float, float]:
    start = info["started_at"].timestamp()
    return start, max(start + float(info["duration_s"]), start if newest is None else float(newest))


def session_baseline(store: SessionStore, session_id: int, info: dict | None = None,
                     segs: pd.DataFrame | None = None) -> tuple[Baseline | None, pd.DataFrame | None, str | None]:
    """The session's stored baseline, each face's means over it, and why it could not be applied (or None)."""
    info = info or store.get_session(session_id)
    try:
        baseline = Baseline.from_dict(info.get("baseline"))
    except StudyError as exc:  # a stored choice this version does not understand: say so, keep the data
        return None, None, str(exc)
    if baseline is None:
        return None, None, None
    start, end = _timing(info, info.get("last_frame_at"))
    segs = segments(store.markers(session_id), start, end) if segs is None else segs
    try:
        return baseline, face_means(store, session_id, baseline.window(segs), start), None
    except StudyError as exc:
        return baseline, None, str(exc)


def session_study(store: SessionStore, session_id: int) -> SessionStudy:
    """Load one session's rows, markers, segments and baseline."""
    info = store.get_session(session_id)
    rows = load_rows(store, session_id)
    start, end = _timing(info, rows["timestamp"].max() if len(rows) else None)
    marks = store.markers(session_id)
    segs = segments(marks, start, end)
    baseline, means, error = session_baseline(store, session_id, info, segs)
    rows = pd.concat([rows, relative(rows, means)], axis=1)
    return SessionStudy(session_id, start, end, int(info["frame_count"]), rows, marks, segs, baseline, means, error)


def segment_stats(study: SessionStudy) -> pd.DataFrame:
    """Per segment and face: duration, frames, face found share, mean probabilities, dominant emotion,
    mean valence and mean ``*_vs_baseline`` (columns ``SEGMENT_STAT_COLUMNS``; empty without markers)."""
    segs = study.segments
    if segs.empty or study.rows.empty:
        return pd.DataFrame(columns=list(SEGMENT_STAT_COLUMNS))
    rows = study.rows.assign(segment=segment_of(study.elapsed, segs))
    rows = rows[rows["segment"] >= 0]
    times = frame_times(study.rows, study.frame_count)
    per_segment = pd.Series(segment_of(times.to_numpy() - study.start, segs)).value_counts()
    grouped = rows.groupby(["segment", "face_id"])
    table = grouped[list(MEASURES) + list(RELATIVE_COLUMNS)].mean()
    table.insert(0, "frames", grouped["frame_index"].nunique())
    table = table.reset_index()
    table["frames_in_segment"] = table["segment"].map(per_segment).fillna(0).astype(int)
    table["frames_in_segment"] = table[["frames_in_segment", "frames"]].max(axis=1)
    table["face_found_share"] = table["frames"] / table["frames_in_segment"]
    probs = table[list(EMOTION_COLUMNS)]
    table["dominant_emotion"] = probs.idxmax(axis=1, skipna=True).str[2:].where(probs.notna().any(axis=1))
    table = segs.merge(table, on="segment", how="inner")
    return table[list(SEGMENT_STAT_COLUMNS)].sort_values(["segment", "face_id"]).reset_index(drop=True)


def study_timeline(study: SessionStudy, bucket_s: float, face_id: int | None = None,
                   origin: float | None = None) -> pd.DataFrame:
    """Mean valence and ``*_vs_baseline`` per time bucket (same buckets as
    :func:`core.session_stats.emotion_timeline`): columns t_s, valence, RELATIVE_COLUMNS, observations."""
    columns = ["t_s", "valence", *RELATIVE_COLUMNS, "observations"]
    rows = study.rows if face_id is None else study.rows[study.rows["face_id"] == face_id]
    rows = rows[rows["valence"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    origin = study.start if origin is None else origin
    bucket = np.floor((rows["timestamp"] - origin) / bucket_s).astype(int)
    grouped = rows.groupby(bucket)
    frame = grouped[["valence", *RELATIVE_COLUMNS]].mean()
    frame["observations"] = grouped.size()
    frame.insert(0, "t_s", (frame.index.to_numpy(dtype=float) + 0.5) * bucket_s)
    return frame.reset_index(drop=True)[columns]


# -- group comparison ----------------------------------------------------------------------------

def group_keys(sessions: pd.DataFrame) -> list[str]:
    """What sessions can be grouped by: ``participant``, ``batch`` (when set anywhere) and ``tag:<name>``."""
    keys = [k for k in GROUP_KEYS_FIXED if k in sessions and sessions[k].notna().any()]
    names = sorted({name for tags in sessions.get("tags", pd.Series(dtype=object)) for name in (tags or {})})
    return keys + [f"tag:{name}" for name in names]


def group_value(session: pd.Series | dict, key: str) -> str:
    """The session's value for a group key (:data:`NOT_SET` when it has none)."""
    if key.startswith("tag:"):
        value = (session.get("tags") or {}).get(key[4:])
    elif key in GROUP_KEYS_FIXED:
        value = session.get(key)
    else:
        raise StudyError(f"cannot group by {key!r}: use participant, batch or tag:<name>")
    return NOT_SET if value is None or (isinstance(value, float) and math.isnan(value)) or value == "" else str(value)


def session_means(store: SessionStore, session_id: int) -> dict[str, float]:
    """One session's mean ``MEASURES`` over all its face observations, and over the faces with a
    baseline their mean ``*_vs_baseline``; ``observations`` counts the rows."""
    per_face = face_means(store, session_id)
    n = per_face["observations"]
    out: dict[str, float] = {"observations": int(n.sum())}
    for measure in MEASURES:
        weights = n[per_face[measure].notna()]
        out[measure] = float((per_face[measure] * n).sum() / weights.sum()) if weights.sum() else math.nan
    out.update({c: math.nan for c in RELATIVE_COLUMNS})
    baseline, base, error = session_baseline(store, session_id)
    if error:
        log.warning("session %s: baseline not applied in the group comparison: %s", session_id, error)
    if base is not None:
        faces = per_face.index.intersection(base.index)
        for measure, column in zip(MEASURES, RELATIVE_COLUMNS):
            diff = (per_face.loc[faces, measure] - base.loc[faces, measure]).dropna()
            weights = n.loc[diff.index]
            if weights.sum():
                out[column] = float((diff * weights).sum() / weights.sum())
    return out


def per_session_means(store: SessionStore, sessions: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per session: id, name, group (its value for ``key``), observations, mean ``MEASURES``
    and ``RELATIVE_COLUMNS``."""
    rows = []
    for _, session in sessions.iterrows():
        rows.append({"session_id": int(session["id"]), "session_name": session["name"],
                     "group": group_value(session, key), **session_means(store, int(session["id"]))})
    return pd.DataFrame(rows, columns=["session_id", "session_name", "group", "observations", *MEASURES,
                                       *RELATIVE_COLUMNS])


def compare_groups(per_session: pd.DataFrame) -> pd.DataFrame:
    """Per group value: sessions, and the mean and spread (sample std over sessions) of each measure.

    Every session counts once, whatever its length: the spread is between sessions (people),
    not between frames. Sessions without emotion results are left out. Columns: group, sessions,
    then ``mean_<m>`` and ``std_<m>`` for each of ``MEASURES`` and ``RELATIVE_COLUMNS``.
    """
    measures = [*MEASURES, *RELATIVE_COLUMNS]
    columns = ["group", "sessions", *(f"{s}_{m}" for m in measures for s in ("mean", "std"))]
    usable = per_session[per_session["valence"].notna()] if len(per_session) else per_session
    if usable.empty:
        return pd.DataFrame(columns=columns)
    grouped = usable.groupby("group", sort=True)
    out = pd.DataFrame({"sessions": grouped.size()})
    for measure in measures:
        out[f"mean_{measure}"] = grouped[measure].mean()
        out[f"std_{measure}"] = grouped[measure].std(ddof=1)
    return out.reset_index()[columns]
