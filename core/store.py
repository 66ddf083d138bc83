"""Session store: every session and its per-frame, per-face results in one SQL database.

SQLite file by default (``<FACESENSE_HOME>/facesense.db``, WAL), any SQLAlchemy
URL (e.g. PostgreSQL for a shared deployment) via ``FACESENSE_DB_URL`` or the
``url`` argument. The video thread hands results to a :class:`SessionWriter`,
which only enqueues them; a background thread batches them into one
transaction about twice a second, so a killed process loses at most that much.

A session that was never ended (the process died) is closed the next time a
store is opened or :meth:`SessionStore.recover` runs: its end becomes its last
frame's time and it is flagged ``ended_abnormally``. Sessions whose writer is
still alive are left alone, since the writer refreshes ``heartbeat_at``
regularly and sessions open in this very process are known.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import queue
import threading
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.config import app_paths
from core.results import FrameResult
from core.store_schema import (BOX_COLUMNS, EMOTION_COLUMNS, POSE_COLUMNS, SOURCES, ensure_schema, markers, results,
                               sessions)


log = logging.getLogger(__name__)

SESSION_COLUMNS = (
    "id", "name", "source", "source_path", "started_at", "ended_at", "status", "ended_abnormally",
    "duration_s", "frame_count", "face_frame_count", "row_count", "settings", "model_versions",
    "participant", "tags", "batch", "source_hash", "baseline",
)
MARKER_COLUMNS = ("id", "session_id", "timestamp", "label")
_UNSET: Any = object()  # "leave as it is" for update_session
FLOAT_RESULT_COLUMNS = ("timestamp", *EMOTION_COLUMNS, "age", "p_female", "detector_confidence", *POSE_COLUMNS)
RESULT_COLUMNS = ("session_id", "timestamp", "frame_index", "face_id", *BOX_COLUMNS, *EMOTION_COLUMNS,
                  "dominant_emotion", "age", "p_female", "detector_confidence", *POSE_COLUMNS)

_live_lock = threading.Lock()
_live_sessions: set[tuple[str, int]] = set()  # (database, session id) started and not ended in this process
_open_writers: "weakref.WeakSet[SessionWriter]" = weakref.WeakSet()


def _normalize_url(url: str) -> sa.URL:
    """``postgresql://`` means psycopg 3 here (the driver FaceSense ships), not psycopg2."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    # WAL: readers never block the writer thread; NORMAL is durable against process kills.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000",
                   "temp_store=MEMORY", "cache_size=-32000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """Engine for ``url``; a SQLite file's folder is created on first use."""
    parsed = _normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


def _jsonable(value: Any) -> Any:
    """Settings/model versions as plain JSON (dataclasses and odd types included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _label(value: str | None) -> str | None:
    """A typed label trimmed, at most 200 characters; empty means none."""
    value = (value or "").strip()
    return value[:200] or None


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=timezone.utc)


def result_rows(session_id: int, result: FrameResult) -> list[dict]:
    """One database row per face of a :class:`~core.analyzer.FrameResult`."""
    rows = []
    for face in result.faces:
        probs = face.emotion_probs
        probs = [None] * len(EMOTION_COLUMNS) if probs is None else [_finite(p) for p in probs]
        row = {
            "session_id": session_id,
            "timestamp": float(result.timestamp),
            "frame_index": int(result.frame_index),
            "face_id": int(face.face_id),
            **{name: int(v) for name, v in zip(BOX_COLUMNS, face.box)},
            **dict(zip(EMOTION_COLUMNS, probs)),
            "dominant_emotion": face.emotion,
            "age": _finite(face.age),
            "p_female": _finite(face.gender),
            "detector_confidence": _finite(face.detector_confidence),
            **dict(zip(POSE_COLUMNS, [_finite(v) for v in face.pose] if face.pose is not None else [None] * 3)),
        }
        rows.append(row)
    return rows


class _FlushRequest:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


_STOP = object()


FLUSH_INTERVAL_S = 0.25  # a batch is taken this often: a kill loses at most this plus one commit (< 0.5 s)


class SessionWriter:
    """Writes one session's results from a background thread.

    ``add`` only puts the result on an unbounded queue, so the video thread is
    never blocked by the database; the thread commits a batch at least every
    ``flush_interval_s`` (and sooner when ``batch_rows`` pile up), and while idle
    still refreshes the session's heartbeat so other processes see it is alive.

    Loss on a crash: a result waits at most ``flush_interval_s`` to be taken into a
    batch (or one commit, when commits are slower than that) and is durable when that
    batch's commit ends. So a kill loses at most ``max(flush_interval_s, C) + C`` of
    results, C being the slowest commit: 0.25 s plus ~0.01-0.1 s for SQLite here, under
    the 0.5 s the docs promise (tests/test_store.py kills a writer whose commits take 0.1 s).
    """

    def __init__(self, store: "SessionStore", session_id: int, flush_interval_s: float = FLUSH_INTERVAL_S,
                 batch_rows: int = 5000, heartbeat_s: float = 5.0) -> None:
        self.store = store
        self.session_id = session_id
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self.heartbeat_s = heartbeat_s
        self.frames_added = 0
        self.frames_written = 0
        self.rows_written = 0
        self.last_error: Exception | None = None
        self._closed = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"facesense-writer-{session_id}", daemon=True)
        self._thread.start()
        _open_writers.add(self)

    def add(self, result: FrameResult) -> None:
        """Queue one frame's result; never blocks, never touches the database."""
        if self._closed:
            raise RuntimeError(f"writer of session {self.session_id} is closed")
        self._queue.put(result)
        self.frames_added += 1

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything added so far is committed; False if that failed or timed out."""
        if not self._thread.is_alive():
            return True
        request = _FlushRequest()
        self._queue.put(request)
        return request.done.wait(timeout) and request.ok

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is queued and stop the thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("writer of session %s did not finish within %ss", self.session_id, timeout)
        _open_writers.discard(self)

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- background thread -------------------------------------------------------------

    def _run(self) -> None:
        rows: list[dict] = []
        frames = face_frames = 0
        newest: float | None = None
        waiting: list[_FlushRequest] = []
        next_flush = time.monotonic() + self.flush_interval_s
        last_write = time.monotonic()
        stop = False

        def take(item) -> None:
            nonlocal stop, frames, face_frames, newest
            if item is _STOP:
                stop = True
            elif isinstance(item, _FlushRequest):
                waiting.append(item)
            elif item is not None and getattr(item, "error", None) is None:
                try:
                    rows.extend(result_rows(self.session_id, item))
                except (AttributeError, TypeError, ValueError) as exc:  # a malformed result: skip it, keep going
                    log.warning("session %s: cannot store frame %s: %s", self.session_id,
                                getattr(item, "frame_index", "?"), exc)
                else:
                    frames += 1
                    face_frames += bool(item.faces)
                    newest = float(item.timestamp) if newest is None else max(newest, float(item.timestamp))

        while not stop:
            try:
                take(self._queue.get(timeout=max(0.0, next_flush - time.monotonic())))
            except queue.Empty:
                pass
            now = time.monotonic()
            due = now >= next_flush or len(rows) >= self.batch_rows or waiting or stop
            if not due:
                continue
            while not stop:  # everything queued so far goes into this commit (results piled up during the last)
                try:
                    take(self._queue.get_nowait())
                except queue.Empty:
                    break
            ok = True
            if rows or frames or now - last_write >= self.heartbeat_s or stop:
                ok = self._write(rows, frames, face_frames, newest)
                for attempt in range(1, 6 if stop else 1):  # closing: a few retries before giving up
                    if ok:
                        break
                    time.sleep(0.5 * attempt)
                    ok = self._write(rows, frames, face_frames, newest)
                if ok:
                    rows, frames, face_frames, newest = [], 0, 0, None
                    last_write = now
                elif stop:
                    log.error("session %s: %d rows could not be written and are lost: %s",
                              self.session_id, len(rows), self.last_error)
            for request in waiting:
                request.ok = ok
                request.done.set()
            waiting.clear()
            # A fixed cadence from when this batch was taken, not from the end of its commit: a slow
            # commit (a busy disk or CPU) does not stretch the time results wait in memory. After a
            # failed write, wait a whole interval before retrying.
            next_flush = now + self.flush_interval_s if ok else time.monotonic() + self.flush_interval_s

    def _write(self, rows: list[dict], frames: int, face_frames: int, newest: float | None) -> bool:
        """One transaction: the rows plus the session's running totals and heartbeat."""
        values: dict[str, Any] = {
            "frame_count": sessions.c.frame_count + frames,
            "face_frame_count": sessions.c.face_frame_count + face_frames,
            "row_count": sessions.c.row_count + len(rows),
            "heartbeat_at": time.time(),
        }
        if newest is not None:
            values["last_frame_at"] = sa.case(
                (sessions.c.last_frame_at.is_(None), newest),
                (sessions.c.last_frame_at < newest, newest),
                else_=sessions.c.last_frame_at,
            )
        try:
            with self.store.engine.begin() as conn:
                if rows:
                    conn.execute(results.insert(), rows)
                conn.execute(sa.update(sessions).where(sessions.c.id == self.session_id).values(**values))
        except sa.exc.IntegrityError as exc:  # the session was deleted under us: nothing to keep
            log.warning("session %s is gone; dropping %d rows (%s)", self.session_id, len(rows), exc.orig)
            self.last_error = exc
            return True
        except sa.exc.SQLAlchemyError as exc:  # database busy or unreachable: keep the rows, retry later
            if self.last_error is None:  # once per outage, not every half second
                log.warning("session %s: write of %d rows failed, will retry: %s", self.session_id, len(rows), exc)
            self.last_error = exc
            return False
        if self.last_error is not None:
            log.info("session %s: writing again after %s", self.session_id, type(self.last_error).__name__)
            self.last_error = None
        self.frames_written += frames
        self.rows_written += len(rows)
        return True


@atexit.register
def _close_open_writers() -> None:
    for writer in list(_open_writers):
        writer.close(timeout=10)


class SessionStore:
    """Sessions and their results; see the module docstring for the guarantees.

    ``stale_after_s``: an unended session from another process counts as
    abandoned when its writer has not checked in for this long.
    """

    def __init__(self, url: str | None = None, *, recover: bool = True, stale_after_s: float = 30.0) -> None:
        self.url = url or app_paths().database_url
        self.engine = create_store_engine(self.url)
        self._key = self.engine.url.render_as_string(hide_password=False)
        ensure_schema(self.engine)
        if recover:
            self.recover(stale_after_s)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    # -- writing -------------------------------------------------------------------------

    def start_session(self, name: str, source: str, settings: dict, model_versions: dict,
                      started_at: datetime | None = None, source_path: str | None = None, *,
                      participant: str | None = None, tags: dict[str, str] | None = None,
                      batch: str | None = None, source_hash: str | None = None) -> int:
        """Create a session (``source``: "webcam" or "video") and return its id.

        ``participant``, ``tags`` (``{"condition": "A"}``) and ``batch`` say where it belongs
        in a study; ``source_hash`` identifies a video file by content (batch resume).
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        started_at = started_at or datetime.now(timezone.utc)
        name = (name or "").strip() or f"{source} {started_at.astimezone():%Y-%m-%d %H:%M:%S}"
        with self.engine.begin() as conn:
            session_id = conn.execute(
                sa.insert(sessions).values(
                    name=name[:200], source=source, source_path=source_path, started_at=started_at,
                    settings=_jsonable(settings or {}), model_versions=_jsonable(model_versions or {}),
                    heartbeat_at=time.time(), participant=_label(participant), tags=_jsonable(dict(tags or {})),
                    batch=_label(batch), source_hash=source_hash,
                ).returning(sessions.c.id)
            ).scalar_one()
        with _live_lock:
            _live_sessions.add((self._key, session_id))
        log.info("session %s started (%s, %s)", session_id, source, name)
        return session_id

    def writer(self, session_id: int, **options: Any) -> SessionWriter:
        """A background writer for this session's results (see :class:`SessionWriter`)."""
        self.get_session(session_id)  # fail now, not in the thread, when the id is wrong
        return SessionWriter(self, session_id, **options)

    def _writers_of(self, session_id: int) -> list[SessionWriter]:
        return [w for w in list(_open_writers) if w.session_id == session_id and w.store._key == self._key]

    def end_session(self, session_id: int, ended_at: datetime | None = None) -> None:
        """Mark the session ended; its writers in this process are flushed and closed first."""
        for writer in self._writers_of(session_id):
            writer.close()
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(sessions).where(sessions.c.id == session_id)
                .values(ended_at=ended_at or datetime.now(timezone.utc), ended_abnormally=False)
            ).rowcount
        with _live_lock:
            _live_sessions.discard((self._key, session_id))
        if not updated:
            raise KeyError(f"no session {session_id}")

    def recover(self, stale_after_s: float = 30.0) -> list[int]:
        """Close sessions left open by a process that died; returns their ids."""
        cutoff = time.time() - stale_after_s
        with _live_lock:
            ours = {sid for key, sid in _live_sessions if key == self._key}
        closed = []
        with self.engine.begin() as conn:
            open_rows = conn.execute(
                sa.select(sessions.c.id, sessions.c.started_at, sessions.c.last_frame_at, sessions.c.heartbeat_at)
                .where(sessions.c.ended_at.is_(None))
            ).all()
            for sid, started_at, last_frame_at, heartbeat_at in open_rows:
                seen = heartbeat_at if heartbeat_at is not None else _epoch(started_at)
                if sid in ours or seen > cutoff:
                    continue
                newest = conn.execute(
                    sa.select(sa.func.max(results.c.timestamp)).where(results.c.session_id == sid)
                ).scalar()
                ends = [t for t in (last_frame_at, newest) if t is not None]
                ended_at = _from_epoch(max(ends)) if ends else started_at
                conn.execute(sa.update(sessions).where(sessions.c.id == sid)
                             .values(ended_at=max(ended_at, started_at), ended_abnormally=True))
                closed.append(sid)
        if closed:
            log.warning("closed sessions %s that ended abnormally (process stopped while recording)", closed)
        return closed

    def rename_session(self, session_id: int, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise ValueError("a session name cannot be empty")
        with self.engine.begin() as conn:
            if not conn.execute(sa.update(sessions).where(sessions.c.id == session_id)
                                .values(name=name[:200])).rowcount:
                raise KeyError(f"no session {session_id}")

    def update_session(self, session_id: int, *, participant: str | None = _UNSET,
                       tags: dict[str, str] | None = _UNSET, baseline: dict | None = _UNSET) -> None:
        """Set a session's participant, tags or baseline (any time: before, during or after recording).

        An argument left out is kept; ``None`` clears it.
        """
        values: dict[str, Any] = {}
        if participant is not _UNSET:
            values["participant"] = _label(participant)
        if tags is not _UNSET:
            values["tags"] = _jsonable(dict(tags or {}))
        if baseline is not _UNSET:
            values["baseline"] = None if baseline is None else _jsonable(baseline)
        if not values:
            return
        with self.engine.begin() as conn:
            if not conn.execute(sa.update(sessions).where(sessions.c.id == session_id).values(**values)).rowcount:
                raise KeyError(f"no session {session_id}")

    # -- markers -------------------------------------------------------------------------

    def add_marker(self, session_id: int, label: str, timestamp: float | None = None) -> int:
        """Store an event marker now, in its own transaction (a kill right after keeps it); its id."""
        label = (label or "").strip()
        if not label:
            raise ValueError("a marker needs a label")
        stamp = time.time() if timestamp is None else float(timestamp)
        if not math.isfinite(stamp):
            raise ValueError(f"marker time must be a finite number, not {timestamp!r}")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(sessions.c.id).where(sessions.c.id == session_id)).first() is None:
                raise KeyError(f"no session {session_id}")
            return conn.execute(sa.insert(markers).values(session_id=session_id, timestamp=stamp, label=label[:200])
                                .returning(markers.c.id)).scalar_one()

    def markers(self, session_id: int) -> pd.DataFrame:
        """The session's markers in time order (columns ``MARKER_COLUMNS``)."""
        query = (sa.select(*(markers.c[name] for name in MARKER_COLUMNS)).where(markers.c.session_id == session_id)
                 .order_by(markers.c.timestamp, markers.c.id))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        return frame.astype({"timestamp": float})

    def update_marker(self, marker_id: int, *, label: str | None = None, timestamp: float | None = None) -> None:
        values: dict[str, Any] = {}
        if label is not None:
            if not label.strip():
                raise ValueError("a marker needs a label")
            values["label"] = label.strip()[:200]
        if timestamp is not None:
            values["timestamp"] = float(timestamp)
        if values:
            with self.engine.begin() as conn:
                if not conn.execute(sa.update(markers).where(markers.c.id == marker_id).values(**values)).rowcount:
                    raise KeyError(f"no marker {marker_id}")

    def delete_marker(self, marker_id: int) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(sa.delete(markers).where(markers.c.id == marker_id)).rowcount:
                raise KeyError(f"no marker {marker_id}")

    def delete_session(self, session_id: int) -> None:
        """Delete a session with its results and markers (refused while it is recording here)."""
        if self._writers_of(session_id):
            raise ValueError(f"session {session_id} is still recording; stop it first")
        with self.engine.begin() as conn:
            conn.execute(sa.delete(results).where(results.c.session_id == session_id))
            conn.execute(sa.delete(markers).where(markers.c.session_id == session_id))
            if not conn.execute(sa.delete(sessions).where(sessions.c.id == session_id)).rowcount:
                raise KeyError(f"no session {session_id}")
        with _live_lock:
            _live_sessions.discard((self._key, session_id))

    # -- reading -------------------------------------------------------------------------

    def get_session(self, session_id: int) -> dict:
        """The session's row as a dict (plus ``status`` and ``duration_s``); KeyError if absent."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).mappings().first()
        if row is None:
            raise KeyError(f"no session {session_id}")
        return self._describe(dict(row))

    @staticmethod
    def _describe(row: dict) -> dict:
        row["tags"] = row.get("tags") or {}  # sessions from before tags: none
        if row["ended_at"] is None:
            row["status"] = "recording"
            end = _from_epoch(row["last_frame_at"]) if row["last_frame_at"] is not None else row["started_at"]
        else:
            row["status"] = "ended abnormally" if row["ended_abnormally"] else "ended"
            end = row["ended_at"]
        row["duration_s"] = max(0.0, (end - row["started_at"]).total_seconds())
        return row

    def list_sessions(self) -> pd.DataFrame:
        """All sessions, newest first, columns ``SESSION_COLUMNS`` (empty frame when none)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(sessions).order_by(sessions.c.started_at.desc(), sessions.c.id.desc()))
            described = [self._describe(dict(r)) for r in rows.mappings()]
        frame = pd.DataFrame(described, columns=list(SESSION_COLUMNS))
        for column in ("started_at", "ended_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def results_query(self, session_id: int, face_id: int | None = None) -> sa.Select:
        query = sa.select(*(results.c[name] for name in RESULT_COLUMNS)).where(results.c.session_id == session_id)
        if face_id is not None:
            query = query.where(results.c.face_id == face_id)
        return query.order_by(results.c.timestamp, results.c.frame_index, results.c.face_id)

    def results(self, session_id: int, face_id: int | None = None) -> pd.DataFrame:
        """Every stored face row of a session in time order (columns ``RESULT_COLUMNS``)."""
        with self.engine.connect() as conn:
            return self._typed(pd.read_sql(self.results_query(session_id, face_id), conn))

    def iter_results(self, session_id: int, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
        """The same rows in chunks, so exports of long sessions stay small in memory."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(stream_results=True)
            for chunk in pd.read_sql(self.results_query(session_id), conn, chunksize=chunk_rows):
                yield self._typed(chunk)

    @staticmethod
    def _typed(frame: pd.DataFrame) -> pd.DataFrame:
        """Measurement columns as float even when all are NULL (a model switched off)."""
        return frame.astype({name: float for name in FLOAT_RESULT_COLUMNS})

    def face_ids(self, session_id: int) -> list[int]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(
                sa.select(results.c.face_id).where(results.c.session_id == session_id).distinct()
            ).scalars())
