"""What one batch file is, what became of it, and the worker that analyses it (:mod:`core.batch`).

Shared by the local process pool (:mod:`core.batch`) and the Ray actors (:mod:`core.batch_ray`),
so neither imports the other's driver. The resume rule lives here too: a worker asks the store
whether its file was already analysed with the same models and settings.
"""
import core  # noqa: F401  (first: safe native-library import order)

import json
import logging
import os
import socket
from dataclasses import dataclass, field, replace
from typing import Callable

import sqlalchemy as sa

from core.store import SessionStore
from core.store_schema import sessions
from core.tags import format_tags
from core.video_analysis import VideoError

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("file", "result", "message", "session_id", "participant", "tags", "frames", "faces",
                  "video_s", "wall_s", "speed_x", "node")


class BatchError(ValueError):
    """Bad input for a batch (a path, the manifest, a tag): the message names what the user gave."""


@dataclass
class FileJob:
    """One file to analyse, with what the manifest and ``--tag`` say about it."""

    path: str  # absolute path on the driver
    label: str  # as the user gave it (messages, the table)
    participant: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    markers: list[tuple[float, str]] = field(default_factory=list)
    source_hash: str | None = None


@dataclass
class FileResult:
    """What happened to one file. ``result``: done, skipped, failed or cancelled."""

    file: str
    result: str
    message: str = ""
    session_id: int | None = None
    participant: str | None = None
    tags: str = ""
    frames: int = 0
    faces: int = 0  # face observations stored
    video_s: float = 0.0
    wall_s: float = 0.0
    node: str = ""  # the machine that analysed it

    @property
    def speed_x(self) -> float:
        """Video seconds per wall-clock second of the analysis."""
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def status(self) -> str:
        return f"{self.result}: {self.message}" if self.message else self.result

    def as_row(self) -> dict:
        row = {name: getattr(self, name) for name in RESULT_COLUMNS}
        row["speed_x"] = round(self.speed_x, 3)
        row["video_s"], row["wall_s"] = round(self.video_s, 3), round(self.wall_s, 3)
        return row


def _normalized(value) -> str:
    return json.dumps(json.loads(json.dumps(value, default=str)), sort_keys=True)


def analysed_session(store: SessionStore, source_hash: str, model_versions: dict,
                     analyzer_settings: dict) -> int | None:
    """The newest finished session of this content with these models and analyzer settings, if any.

    That is the resume rule: such a file needs no second analysis. Sessions that ended
    abnormally (a killed process) do not count.
    """
    query = (sa.select(sessions.c.id, sessions.c.settings, sessions.c.model_versions)
             .where(sessions.c.source_hash == source_hash, sessions.c.ended_at.is_not(None),
                    sa.or_(sessions.c.ended_abnormally.is_(None), sessions.c.ended_abnormally.is_(False)))
             .order_by(sessions.c.id.desc()))
    want_models, want_settings = _normalized(model_versions), _normalized(analyzer_settings)
    with store.engine.connect() as conn:
        for session_id, settings, versions in conn.execute(query):
            if _normalized(versions or {}) == want_models and _normalized((settings or {}).get("analyzer")) \
                    == want_settings:
                return int(session_id)
    return None


class BatchWorker:
    """Holds one analyzer (models loaded once) and analyses files one after the other."""

    def __init__(self, db: str | None, detector: str = "yunet", threads: int | None = None,
                 batch: str | None = None, redo: bool = False) -> None:
        from core.analyzer import limit_inference_threads
        from core.models import keep_loaded_for_good
        from core.video_analysis import default_analyzer, offline_settings

        if threads:  # workers share the cores: TensorFlow's and OpenCV's (YuNet) pools sized to their share
            import cv2

            limit_inference_threads(threads)
            cv2.setNumThreads(threads)
        self.threads, self.batch, self.redo = threads, batch, redo
        self.analyzer = default_analyzer(detector)
        self.store = SessionStore(db)
        self._settings = offline_settings(self.analyzer.settings).to_dict()
        self.node = socket.gethostname()
        keep_loaded_for_good()  # a short exit for the worker

    def previous(self, job: FileJob) -> int | None:
        if self.redo or not job.source_hash:
            return None
        return analysed_session(self.store, job.source_hash, self.analyzer.model_versions(), self._settings)

    def run(self, job: FileJob, path: str | None = None, cancel=None,
            progress: Callable[[float], None] | None = None) -> FileResult:
        """Analyse ``job`` (from ``path`` when the file lies elsewhere on this node); never raises
        for a bad file: the result says ``failed`` with the reason."""
        from core.video_analysis import analyze_video

        base = FileResult(job.label, "failed", participant=job.participant, tags=format_tags(job.tags),
                          node=self.node)
        try:
            previous = self.previous(job)
            if previous is not None:
                return replace(base, result="skipped", message=f"already analysed (session {previous})",
                               session_id=previous)
            run = analyze_video(path or job.path, self.analyzer, self.store, source_label=job.path,
                                participant=job.participant, tags=job.tags, markers=job.markers, batch=self.batch,
                                source_hash=job.source_hash, cancel=cancel, progress=progress,
                                threads=self.threads)
        except VideoError as exc:
            return replace(base, message=str(exc))
        except Exception as exc:  # one broken file must not stop the batch; the table says why
            log.exception("analysis of %s failed", job.label)
            return replace(base, message=f"{type(exc).__name__}: {exc}")
        result = "cancelled" if run.cancelled else "done"
        return replace(base, result=result, session_id=run.session_id, frames=run.frames, faces=run.faces,
                       video_s=run.video_s, wall_s=run.wall_s,
                       message="mostly no face found" if run.mostly_empty and not run.cancelled else "")


@dataclass
class BatchOptions:
    workers: int
    db: str | None = None
    detector: str = "yunet"
    batch: str = ""
    redo: bool = False
    threads_per_worker: int | None = None  # None: the cores shared among the workers

    @property
    def threads(self) -> int:
        """Threads for one file's analysis: by default the cores shared among the workers."""
        return self.threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def worker_options(self) -> dict:
        return {"db": self.db, "detector": self.detector, "threads": self.threads, "batch": self.batch,
                "redo": self.redo, "log_level": logging.getLogger().level or logging.WARNING}


class BatchInterrupted(Exception):
    """Ctrl+C (or SIGTERM) during a batch: ``results`` holds what finished."""

    def __init__(self, results: list[FileResult]) -> None:
        super().__init__("batch interrupted")
        self.results = results

