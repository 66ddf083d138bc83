"""One job on disk: its states, its files and the record in ``job.json``.

Everything a page needs lives under the jobs folder (see :mod:`training.jobs`); this
module is the one that knows the names of those files.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from core.card import ModelCard, ModelFolder, write_json_atomic
from training import RESUME_DIR
from training.jobs.errors import JobError
from training.options import TrainOptions

STARTING, TRAINING, EVALUATING, REGISTERING = "starting", "training", "evaluating", "registering"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

LOCK_FILE = "active.lock"
GUARD_FILE = ".guard"
JOB_FILE = "job.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel-requested"
OUT_DIR = "out"
ACTIVE_EVALUATION_FILE = "active_evaluation.json"
UPLOADS_DIR = "uploads"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable (a writer may be mid-way)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One training run as stored in ``job.json`` (plus helpers to read its files)."""

    id: str
    dir: Path
    options: TrainOptions
    state: str = STARTING
    created: str = ""
    started: str | None = None
    finished: str | None = None
    pid: int | None = None
    model_id: str | None = None          # registry id once registered
    active_model_id: str | None = None   # the model it was compared with
    message: str = ""                    # failure reason or a note for the user
    notes: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def out_dir(self) -> Path:
        return self.dir / OUT_DIR

    @property
    def output(self) -> ModelFolder:
        """The fit's output folder (model, card, evaluation)."""
        return ModelFolder(self.out_dir)

    @property
    def progress_file(self) -> Path:
        return self.dir / PROGRESS_FILE

    @property
    def log_file(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def cancel_requested(self) -> bool:
        return (self.dir / CANCEL_FILE).exists()

    def request_cancel(self) -> None:
        (self.dir / CANCEL_FILE).touch()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["dir"] = str(self.dir)
        data["options"] = self.options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["dir"] = Path(values["dir"])
        values["options"] = TrainOptions.from_dict(values["options"])
        return cls(**values)

    def card(self) -> ModelCard | None:
        try:
            return self.output.read_card()
        except (OSError, ValueError):
            return None

    def evaluation(self) -> dict | None:
        """The new model's evaluation on the held-out split (fit's ``evaluation.json``)."""
        return self.output.read_evaluation()

    def active_evaluation(self) -> dict | None:
        """The then-active model evaluated on the same split, when that worked."""
        return read_json(self.dir / ACTIVE_EVALUATION_FILE)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_chars))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def discard_backup(self) -> None:
        """A job is one attempt: the page never resumes it, so fit's per-epoch backup is only disk space."""
        shutil.rmtree(self.out_dir / RESUME_DIR, ignore_errors=True)


class JobStore:
    """The job records under one jobs folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load(self, job_id: str) -> Job:
        data = read_json(self.root / job_id / JOB_FILE)
        if data is None:
            raise JobError(f"no training job {job_id!r}")
        return Job.from_dict(data)

    def save(self, job: Job) -> None:
        write_json_atomic(job.dir / JOB_FILE, job.to_dict())

    def ids(self) -> list[str]:
        """Every folder that holds a job record."""
        return [f.name for f in self.root.iterdir() if f.is_dir() and (f / JOB_FILE).is_file()]
