"""CSV export of sessions: per-frame, per-face rows and a per-session summary.

The column lists below are the documented, stable schema (docs/analytics.md):
new columns may be appended in later versions, existing ones never renamed or
reordered. Timestamps are ISO 8601 in UTC with milliseconds; one header row;
empty cells mean "not measured" (e.g. the emotion model was switched off).

CLI::

    python -m core.export --session 3 --out session3.csv
    python -m core.export --session 3 --session 4 --summary --out summary.csv
    python -m core.export --all --summary --out -          # to stdout
    python -m core.export --session 3 --markers --out markers.csv
    python -m core.export --session 3 --segments --out segments.csv
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import io
import json
import logging
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import pandas as pd

from core import study
from core.config import EMOTIONS
from core.session_stats import summary
from core.tasks import FEMALE_THRESHOLD, GENDERS  # gender_of, vectorised
from core.store import SessionStore
from core.store_schema import BOX_COLUMNS, EMOTION_COLUMNS, POSE_COLUMNS
from core.tags import format_tags

log = logging.getLogger(__name__)

FRAME_COLUMNS = (
    "session_id", "session_name", "timestamp", "elapsed_s", "frame_index", "face_id", *BOX_COLUMNS,
    *EMOTION_COLUMNS, "dominant_emotion", "age", "p_female", "gender", "detector_confidence", *POSE_COLUMNS,
    "valence",
)
# appended after FRAME_COLUMNS when at least one exported session has a baseline (empty cells for the others)
BASELINE_COLUMNS = study.RELATIVE_COLUMNS
SUMMARY_COLUMNS = (
    "session_id", "session_name", "source", "source_path", "status", "started_at", "ended_at", "duration_s",
    "frames", "frames_with_faces", "observations", "faces", "dominant_emotion",
    *(f"share_{e}" for e in EMOTIONS), "mean_age", "female_share", "model_versions", "settings",
    "participant", "tags", "batch", "mean_valence", "baseline", "mean_valence_vs_baseline", "markers",
)
MARKER_EXPORT_COLUMNS = ("session_id", "session_name", "marker_id", "time_s", "timestamp", "label")
SEGMENT_EXPORT_COLUMNS = ("session_id", "session_name", *study.SEGMENT_STAT_COLUMNS)


def iso_utc(values: pd.Series) -> pd.Series:
    """Datetimes or epoch seconds -> ``2024-05-01T12:00:00.033+00:00`` strings ('' for missing)."""
    if pd.api.types.is_numeric_dtype(values):
        stamps = pd.to_datetime(values, unit="s", utc=True)
    else:
        stamps = pd.to_datetime(values, utc=True)
    naive = stamps.dt.round("ms").dt.tz_convert(None).to_numpy(dtype="datetime64[ms]")
    text = pd.Series(np.datetime_as_string(naive, unit="ms"), index=values.index, dtype=object) + "+00:00"
    return text.where(stamps.notna(), "")


def _has_baseline(store: SessionStore, session_ids: Iterable[int]) -> bool:
    return any(store.get_session(i).get("baseline") for i in session_ids)


def frame_columns(store: SessionStore, session_ids: Iterable[int]) -> list[str]:
    """``FRAME_COLUMNS``, plus ``BASELINE_COLUMNS`` when any of the sessions has a baseline."""
    return [*FRAME_COLUMNS, *(BASELINE_COLUMNS if _has_baseline(store, session_ids) else ())]


def frame_chunks(store: SessionStore, session_id: int, chunk_rows: int = 50_000,
                 with_baseline: bool | None = None) -> Iterator[pd.DataFrame]:
    """The session's rows as export-ready frames with exactly ``FRAME_COLUMNS`` (and ``BASELINE_COLUMNS``
    when ``with_baseline``; default: when this session has a baseline)."""
    info = store.get_session(session_id)
    start = info["started_at"].timestamp()
    with_baseline = bool(info.get("baseline")) if with_baseline is None else with_baseline
    means = study.session_baseline(store, session_id, info)[1] if with_baseline else None
    columns = [*FRAME_COLUMNS, *(BASELINE_COLUMNS if with_baseline else ())]
    for chunk in store.iter_results(session_id, chunk_rows):
        out = pd.DataFrame({"session_id": chunk["session_id"], "session_name": info["name"]})
        out["timestamp"] = iso_utc(chunk["timestamp"])
        out["elapsed_s"] = (chunk["timestamp"] - start).round(3)
        for column in ("frame_index", "face_id", *BOX_COLUMNS):
            out[column] = chunk[column]
        for column in EMOTION_COLUMNS:
            out[column] = chunk[column].astype(float).round(5)
        out["dominant_emotion"] = chunk["dominant_emotion"]
        out["age"] = chunk["age"].astype(float).round(2)
        out["p_female"] = chunk["p_female"].astype(float).round(4)
        p_female = chunk["p_female"].astype(float)
        out["gender"] = p_female.ge(FEMALE_THRESHOLD).map({False: GENDERS[0], True: GENDERS[1]}).where(p_female.notna())
        out["detector_confidence"] = chunk["detector_confidence"].astype(float).round(3)
        for column in POSE_COLUMNS:
            out[column] = chunk[column].astype(float).round(1)
        chunk = chunk.assign(valence=study.valence(chunk))
        out["valence"] = chunk["valence"].round(5)
        if with_baseline:
            out[list(BASELINE_COLUMNS)] = study.relative(chunk, means).round(5).to_numpy()
        yield out[columns]


def write_frames_csv(store: SessionStore, session_ids: Iterable[int], out: IO[str]) -> int:
    """Write per-frame rows of the sessions to a text stream; returns the number of data rows."""
    session_ids = list(session_ids)
    with_baseline = _has_baseline(store, session_ids)
    written = 0
    header = True
    for session_id in session_ids:
        for chunk in frame_chunks(store, session_id, with_baseline=with_baseline):
            chunk.to_csv(out, index=False, header=header)
            header = False
            written += len(chunk)
    if header:  # no rows at all: still one header row, so the file parses
        pd.DataFrame(columns=frame_columns(store, session_ids)).to_csv(out, index=False)
    return written


def summary_frame(store: SessionStore, session_ids: Iterable[int]) -> pd.DataFrame:
    """One row per session with exactly ``SUMMARY_COLUMNS``."""
    rows = []
    for session_id in session_ids:
        s = summary(store, session_id)
        info = store.get_session(session_id)
        means = study.session_means(store, session_id)
        rows.append({
            "session_id": s.session_id, "session_name": s.name, "source": s.source,
            "source_path": info["source_path"], "status": s.status,
            "started_at": s.started_at, "ended_at": s.ended_at, "duration_s": round(s.duration_s, 3),
            "frames": s.frames, "frames_with_faces": s.frames_with_faces, "observations": s.observations,
            "faces": s.faces, "dominant_emotion": s.dominant_emotion,
            **{f"share_{e}": (round(s.emotion_share[e], 5) if s.emotion_share else None) for e in EMOTIONS},
            "mean_age": None if s.mean_age is None else round(s.mean_age, 2),
            "female_share": None if s.female_share is None else round(s.female_share, 5),
            "model_versions": json.dumps(s.model_versions, sort_keys=True),
            "settings": json.dumps(s.settings, sort_keys=True),
            "participant": info["participant"], "tags": format_tags(info["tags"]) or None, "batch": info["batch"],
            "mean_valence": _rounded(means["valence"]),
            "baseline": json.dumps(info["baseline"], sort_keys=True) if info["baseline"] else None,
            "mean_valence_vs_baseline": _rounded(means["valence" + study.VS_BASELINE]),
            "markers": len(store.markers(session_id)),
        })
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("started_at", "ended_at"):
        frame[column] = iso_utc(frame[column]) if len(frame) else frame[column]
    return frame


def _rounded(value: float, digits: int = 5) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), digits)


def markers_frame(store: SessionStore, session_ids: Iterable[int]) -> pd.DataFrame:
    """Every marker of the sessions (columns ``MARKER_EXPORT_COLUMNS``); ``time_s`` is seconds after the
    session start, so a video's file reads back as its ``--markers`` input (``time_s,label``)."""
    frames = []
    for session_id in session_ids:
        info = store.get_session(session_id)
        marks = store.markers(session_id)
        frames.append(pd.DataFrame({
            "session_id": session_id, "session_name": info["name"], "marker_id": marks["id"],
            "time_s": (marks["timestamp"] - info["started_at"].timestamp()).round(3),
            "timestamp": iso_utc(marks["timestamp"]), "label": marks["label"]}))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True)[list(MARKER_EXPORT_COLUMNS)] if frames else \
        pd.DataFrame(columns=list(MARKER_EXPORT_COLUMNS))


def segments_frame(store: SessionStore, session_ids: Iterable[int]) -> pd.DataFrame:
    """Per session, segment and face: :func:`core.study.segment_stats` (columns ``SEGMENT_EXPORT_COLUMNS``)."""
    frames = []
    for session_id in session_ids:
        table = study.segment_stats(study.session_study(store, session_id))
        if len(table):
            table.insert(0, "session_name", store.get_session(session_id)["name"])
            table.insert(0, "session_id", session_id)
            frames.append(table)
    if not frames:
        return pd.DataFrame(columns=list(SEGMENT_EXPORT_COLUMNS))
    out = pd.concat(frames, ignore_index=True)[list(SEGMENT_EXPORT_COLUMNS)]
    numbers = [c for c in out.columns if c.startswith("p_") or c.startswith("valence") or c.endswith("_s")
               or c == "face_found_share"]
    out[numbers] = out[numbers].astype(float).round(5)
    return out


def frames_csv_bytes(store: SessionStore, session_ids: Iterable[int]) -> bytes:
    buffer = io.StringIO()
    write_frames_csv(store, session_ids, buffer)
    return buffer.getvalue().encode("utf-8")


def summary_csv_bytes(store: SessionStore, session_ids: Iterable[int]) -> bytes:
    return summary_frame(store, session_ids).to_csv(index=False).encode("utf-8")


def markers_csv_bytes(store: SessionStore, session_ids: Iterable[int]) -> bytes:
    return markers_frame(store, session_ids).to_csv(index=False).encode("utf-8")


def segments_csv_bytes(store: SessionStore, session_ids: Iterable[int]) -> bytes:
    return segments_frame(store, session_ids).to_csv(index=False).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.export", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", type=int, action="append", help="session id (repeat for several)")
    which.add_argument("--all", action="store_true", help="every session in the store")
    parser.add_argument("--out", required=True, help="CSV file to write, or - for stdout")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--summary", action="store_true", help="one summary row per session instead of frames")
    table.add_argument("--markers", action="store_true", help="the sessions' event markers (time_s,label,...)")
    table.add_argument("--segments", action="store_true", help="per marker segment and face: means, valence, ...")
    parser.add_argument("--db", help="SQLAlchemy URL (default: FACESENSE_DB_URL or the SQLite file in FACESENSE_HOME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    store = SessionStore(args.db)
    known = set(store.list_sessions()["id"].astype(int))
    ids = sorted(known) if args.all else args.session
    missing = [i for i in ids if i not in known]
    if missing:
        print(f"error: no session with id {', '.join(map(str, missing))} "
              f"(known: {', '.join(map(str, sorted(known))) or 'none'})", file=sys.stderr)
        return 2
    to_stdout = args.out == "-"
    target = sys.stdout if to_stdout else open(Path(args.out).expanduser(), "w", newline="", encoding="utf-8")
    try:
        tables = {"summary": summary_frame, "markers": markers_frame, "segments": segments_frame}
        chosen = next((name for name in tables if getattr(args, name)), None)
        if chosen:
            frame = tables[chosen](store, ids)
            frame.to_csv(target, index=False)
            count = len(frame)
        else:
            count = write_frames_csv(store, ids, target)
    finally:
        if not to_stdout:
            target.close()
    if not to_stdout:
        kind = {"summary": "summary rows", "markers": "markers", "segments": "segment rows"}.get(chosen, "frame rows")
        print(f"wrote {count} {kind} of {len(ids)} session(s) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
