"""Background training jobs: start, watch, cancel, and register the result.

Why a separate process: Streamlit reruns the page script on every click and
kills nothing when the browser goes away, so a training that lives in the script
thread would block the UI and die with the session. Here a small *supervisor*
process (``python -m training.jobs run JOB_DIR``) is started in its own session
(process group). It runs ``python -m training fit`` with ``--progress``, then
evaluates the currently active model on the same held-out split for a side-by-side
comparison, and only then registers the new model (never activates it).

Everything a page needs lives on disk under ``app_paths().jobs_dir``:

- ``active.lock``: ``{"job_id", "pid", "token"}`` of the running supervisor. One
  job per server: a start is refused while the named process is alive; a lock
  left by a dead process (crash, reboot) is taken over. Check-and-take happens
  under an ``flock`` so two browser tabs or two server processes cannot race.
- ``<job_id>/job.json``: the job's state, written atomically.
- ``<job_id>/progress.jsonl``: the fit CLI's progress events (read by :func:`read_progress`).
- ``<job_id>/out/``: the fit output (``model.keras``, ``card.json``, ``evaluation.json``).
- ``<job_id>/active_evaluation.json``: the active model on the same split.
- ``<job_id>/log.txt``: stdout/stderr of both child commands, for error reports.

Cancel terminates the whole process group (supervisor and fit), marks the job
cancelled and registers nothing; the active model is never touched by a job.
"""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from core.config import REPO_ROOT, TASKS, app_paths
from core.disk import prune, uploads_cap
from core.registry import ModelRegistry, write_json_atomic
from training import RESUME_DIR

log = logging.getLogger(__name__)

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

# Upload types the data readers understand, per task (FER2013 CSV or image-folder zip;
# UTKFace as zip, tar or compressed tar).
UPLOAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "emotion": (".csv", ".zip"),
    "age": (".zip", ".tar", ".tar.gz", ".tgz"),
    "gender": (".zip", ".tar", ".tar.gz", ".tgz"),
}


class JobBusy(RuntimeError):
    """Another training is already running on this server."""


class JobError(RuntimeError):
    """A job request that cannot be carried out (bad options, unknown job)."""


@dataclass(frozen=True)
class TrainOptions:
    """What the user chose on the page; mirrors ``python -m training fit``'s flags.

    ``arch``/``lr`` of ``None`` leave the library's defaults in charge.
    """

    task: str
    data: str
    arch: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None
    augment: bool = True
    fraction: float = 1.0
    seed: int = 0
    precision: str = "float32"

    def validate(self) -> None:
        from training.builders import PRECISIONS

        if self.task not in TASKS:
            raise JobError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if not Path(self.data).exists():
            raise JobError(f"data not found: {self.data}")
        if self.epochs < 1 or self.batch_size < 1:
            raise JobError("epochs and batch size must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise JobError("the learning rate must be positive")
        if not 0 < self.fraction <= 1:
            raise JobError("the data fraction must be in (0, 1]")
        if self.precision not in PRECISIONS:
            raise JobError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")

    def fit_args(self, out_dir: Path, progress_file: Path) -> list[str]:
        args = ["--task", self.task, "--data", str(self.data), "--epochs", str(self.epochs),
                "--batch-size", str(self.batch_size), "--fraction", str(self.fraction),
                "--seed", str(self.seed), "--out", str(out_dir), "--progress", str(progress_file)]
        if self.arch:
            args += ["--arch", self.arch]
        if self.lr is not None:
            args += ["--lr", repr(float(self.lr))]
        if not self.augment:
            args.append("--no-augment")
        if self.precision != "float32":
            args += ["--precision", self.precision]
        return args

    @classmethod
    def from_dict(cls, data: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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
    def progress_file(self) -> Path:
        return self.dir / PROGRESS_FILE

    @property
    def log_file(self) -> Path:
        return self.dir / LOG_FILE

    def to_dict(self) -> dict:
        data = asdict(self)
        data["dir"] = str(self.dir)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["dir"] = Path(values["dir"])
        values["options"] = TrainOptions.from_dict(values["options"])
        return cls(**values)

    def card(self) -> dict | None:
        return _read_json(self.out_dir / "card.json")

    def evaluation(self) -> dict | None:
        """The new model's evaluation on the held-out split (fit's ``evaluation.json``)."""
        return _read_json(self.out_dir / "evaluation.json")

    def active_evaluation(self) -> dict | None:
        """The then-active model evaluated on the same split, when that worked."""
        return _read_json(self.dir / ACTIVE_EVALUATION_FILE)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_chars))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


@dataclass
class Progress:
    """The fit's progress events folded into what a progress bar and curves need."""

    phase: str = "preparing"             # preparing | training | evaluating | done | error
    epochs: int = 0
    steps: int = 0                       # batches per epoch
    epochs_done: int = 0
    step: int = 0                        # batches done in the current epoch
    history: list[dict] = field(default_factory=list)   # one logs dict per finished epoch
    batch_logs: dict = field(default_factory=dict)
    start_time: float | None = None      # the fit's "start" event (after data loading)
    last_time: float | None = None       # time of the newest event
    error: str | None = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps

    @property
    def steps_done(self) -> int:
        return min(self.total_steps, self.epochs_done * self.steps + self.step)

    @property
    def fraction(self) -> float:
        """Share of all training batches done, in [0, 1]."""
        if self.phase in ("evaluating", "done"):
            return 1.0
        return self.steps_done / self.total_steps if self.total_steps else 0.0

    def remaining_seconds(self) -> float | None:
        """Training time left, from the time per finished batch so far (None until known)."""
        if self.phase != "training" or not self.steps_done or self.start_time is None:
            return None
        per_step = (self.last_time - self.start_time) / self.steps_done
        return per_step * (self.total_steps - self.steps_done)


def read_progress(path: Path) -> Progress:
    """Fold the JSON-lines progress file; unreadable or half-written lines are skipped."""
    progress = Progress()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return progress
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the writer may be mid-line
        if isinstance(event, dict):
            _apply_event(progress, event)
    return progress


def _apply_event(progress: Progress, event: dict) -> None:
    kind = event.get("event")
    progress.last_time = event.get("time", progress.last_time)
    if kind == "start":
        progress.phase = "training"
        progress.epochs = int(event.get("epochs") or 0)
        progress.steps = int(event.get("steps") or 0)
        progress.start_time = event.get("time")
    elif kind == "batch":
        progress.phase = "training"
        progress.steps = int(event.get("steps") or progress.steps)
        progress.step = int(event.get("step") or 0)
        progress.batch_logs = dict(event.get("logs") or {})
    elif kind == "epoch":
        progress.history.append({"epoch": len(progress.history) + 1, **(event.get("logs") or {})})
        progress.epochs_done = len(progress.history)
        progress.epochs = int(event.get("epochs") or progress.epochs)
        progress.step = 0
    elif kind == "evaluate":
        progress.phase = "evaluating"
    elif kind == "done":
        progress.phase = "done"
    elif kind == "error":
        progress.phase = "error"
        progress.error = str(event.get("message", "unknown error"))


# -- processes ------------------------------------------------------------------

_children: dict[int, subprocess.Popen] = {}   # supervisors this process started (for reaping)


def _process_token(pid: int) -> str | None:
    """A token that identifies a *living* process (pid + start time), None if gone.

    The start time guards against pid reuse after a reboot or a long time; a
    zombie counts as gone.
    """
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    rest = stat.rsplit(")", 1)[1].split()
    return None if rest[0] in ("Z", "X") else rest[19]


def _group_members(pgid: int) -> list[int]:
    """Living (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[2]) == pgid and rest[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(pgid: int, grace: float = 10.0) -> bool:
    """SIGTERM the group, SIGKILL what is left after ``grace`` seconds; True when all gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        _signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _process_token(pgid)  # reaps our own supervisor child
            if not _group_members(pgid):
                return True
            time.sleep(0.1)
    return not _group_members(pgid)


# -- files ----------------------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SUFFIXES = re.compile(r"((?:\.[A-Za-z0-9]{1,5}){1,2})$")


def sanitize_filename(name: str, max_len: int = 80) -> str:
    """A safe single path component: a readable stem plus the (double) extension, lower-cased.

    Drops folders (``../``, ``C:\\``), odd and control characters and leading dots;
    never empty, so ``?.csv`` becomes ``upload.csv``.
    """
    base = re.split(r"[\\/]", name)[-1]
    match = _SUFFIXES.search(base)
    suffix = match.group(1) if match else ""
    stem = _UNSAFE.sub("_", base[: len(base) - len(suffix)]).strip("._") or "upload"
    return stem[:max_len] + suffix.lower()


def upload_suffix(name: str, task: str) -> str:
    """The supported suffix ``name`` ends with, or a :class:`JobError` naming what is accepted."""
    allowed = UPLOAD_SUFFIXES[task]
    lower = name.lower()
    for suffix in sorted(allowed, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix
    raise JobError(f"'{name}' is not a supported {task} data file; upload one of: "
                   + ", ".join(allowed))


class JobManager:
    """The job API used by the Training page (and the tests): one job at a time per server."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else app_paths().jobs_dir
        self.root.mkdir(parents=True, exist_ok=True)

    # -- locking ------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise check-and-take of the lock across threads and processes."""
        with open(self.root / GUARD_FILE, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _holder(self) -> dict | None:
        """The lock's content when its process is alive; a stale lock reads as free."""
        lock = _read_json(self.root / LOCK_FILE)
        if not lock or not isinstance(lock.get("pid"), int):
            return None
        token = _process_token(lock["pid"])
        if token is None or (lock.get("token") and token != lock["token"]):
            return None
        return lock

    def _release(self, job_id: str) -> None:
        lock = _read_json(self.root / LOCK_FILE)
        if lock and lock.get("job_id") == job_id:
            with contextlib.suppress(FileNotFoundError):
                (self.root / LOCK_FILE).unlink()

    # -- reading ------------------------------------------------------------------
    def _load(self, job_id: str) -> Job:
        data = _read_json(self.root / job_id / JOB_FILE)
        if data is None:
            raise JobError(f"no training job {job_id!r}")
        return Job.from_dict(data)

    def _save(self, job: Job) -> None:
        write_json_atomic(job.dir / JOB_FILE, job.to_dict())

    def status(self, job_id: str) -> Job:
        """The job's state; a job whose processes died without a word is marked failed."""
        job = self._load(job_id)
        if job.done:
            return job
        holder = self._holder()
        if holder and holder.get("job_id") == job_id:
            return job
        with self._guard():
            job = self._load(job_id)   # re-read: it may have finished meanwhile
            holder = self._holder()
            if not job.done and not (holder and holder.get("job_id") == job_id):
                job.state, job.finished = FAILED, _now()
                job.message = job.message or "The training process stopped unexpectedly (see the log)."
                self._save(job)
                self._release(job_id)
        return job

    def progress(self, job_id: str) -> Progress:
        return read_progress(self.root / job_id / PROGRESS_FILE)

    def result(self, job_id: str) -> Job | None:
        """The finished job (with its evaluation files), or None while it still runs."""
        job = self.status(job_id)
        return job if job.done else None

    def current(self) -> Job | None:
        """The job running now on this server, if any."""
        holder = self._holder()
        if not holder:
            return None
        try:
            job = self.status(holder["job_id"])
        except JobError:
            return None
        return None if job.done else job

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        jobs = []
        for folder in self.root.iterdir():
            if folder.is_dir() and (folder / JOB_FILE).is_file():
                with contextlib.suppress(JobError, KeyError, TypeError, ValueError):
                    jobs.append(self.status(folder.name))
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    # -- acting -------------------------------------------------------------------
    def start(self, options: TrainOptions) -> Job:
        """Start a training in the background; raises :class:`JobBusy` while one runs."""
        options.validate()
        options = replace(options, data=str(Path(options.data).expanduser().resolve()))
        with self._guard():
            holder = self._holder()
            if holder:
                raise JobBusy(f"A training job ({holder['job_id']}) is already running on this server. "
                              "Please wait for it to finish or cancel it first.")
            job_id = f"{options.task}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
            job = Job(job_id, self.root / job_id, options, created=_now())
            job.dir.mkdir(parents=True)
            self._save(job)
            with open(job.log_file, "ab") as log_fh:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "training.jobs", "run", str(job.dir)],
                    cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                    start_new_session=True)
            _children[proc.pid] = proc
            write_json_atomic(self.root / LOCK_FILE, {"job_id": job_id, "pid": proc.pid,
                                                      "token": _process_token(proc.pid)})
        log.info("started training job %s (pid %d)", job_id, proc.pid)
        return job

    def cancel(self, job_id: str, grace: float = 10.0) -> Job:
        """Stop the job's processes, mark it cancelled; nothing gets registered.

        A job that already finished is returned unchanged (it may have succeeded
        in the moment before the click).
        """
        job = self.status(job_id)
        if job.done:
            return job
        (job.dir / CANCEL_FILE).touch()
        holder = self._holder()
        if holder and holder.get("job_id") == job_id:
            if not _stop_group(holder["pid"], grace):
                log.warning("job %s: processes of group %d still alive after SIGKILL", job_id, holder["pid"])
        with self._guard():
            job = self._load(job_id)
            if not job.done:
                job.state, job.finished, job.message = CANCELLED, _now(), "Cancelled by the user."
                self._save(job)
            self._release(job_id)
        _discard_backup(job)
        log.info("job %s: %s", job_id, job.state)
        return job

    def wait(self, job_id: str, timeout: float, poll: float = 0.5) -> Job:
        """Block until the job is finished or ``timeout`` seconds passed (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        job = self.status(job_id)
        while not job.done and time.monotonic() < deadline:
            time.sleep(poll)
            job = self.status(job_id)
        return job

    def save_upload(self, name: str, chunks: BinaryIO, task: str) -> Path:
        """Store an uploaded data file under ``jobs_dir/uploads`` with a sanitised name.

        Refuses unsupported types before writing anything. The stored name starts
        with a hash of the content, so uploading the same file twice keeps one copy.
        """
        upload_suffix(name, task)
        folder = self.root / UPLOADS_DIR
        folder.mkdir(exist_ok=True)
        digest = hashlib.sha1()
        tmp = folder / f".partial-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                for block in iter(lambda: chunks.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            final = folder / f"{digest.hexdigest()[:10]}-{sanitize_filename(name)}"
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.prune_uploads(keep=[final])
        return final

    def _uploads_in_use(self) -> set[Path]:
        """Uploads a job may still read: the data of every job that has not ended."""
        return {Path(job.options.data).resolve() for job in self.list() if not job.done and job.options.data}

    def discard_upload(self, path: str | Path) -> bool:
        """Delete an upload that was refused or given up (True if deleted); never one a running job reads,
        never anything outside the uploads folder."""
        path = Path(path).resolve()
        if path.parent != (self.root / UPLOADS_DIR).resolve() or path in self._uploads_in_use():
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def prune_uploads(self, keep: list[Path] = ()) -> list[Path]:
        """Keep ``jobs/uploads`` under :func:`core.disk.uploads_cap` (oldest first; never in use)."""
        folder = self.root / UPLOADS_DIR
        broken = prune(folder, pattern=".partial-*", max_age_s=3600)  # copies cut off by a crash
        return broken + prune(folder, uploads_cap(), keep=[*keep, *self._uploads_in_use()])


# -- the supervisor process -----------------------------------------------------

def _discard_backup(job: Job) -> None:
    """A job is one attempt: the page never resumes it, so its per-epoch backup is only disk space."""
    shutil.rmtree(job.out_dir / RESUME_DIR, ignore_errors=True)


def _training_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "training", *args]


def _run_logged(cmd: list[str], log_fh: BinaryIO) -> int:
    log_fh.write(f"\n$ {' '.join(cmd)}\n".encode())
    log_fh.flush()
    return subprocess.call(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_fh,
                           stderr=subprocess.STDOUT)


def _evaluate_active(job: Job, evaluation: dict, log_fh: BinaryIO) -> None:
    """Evaluate the active model on the split the new model was evaluated on."""
    active = ModelRegistry().active(job.options.task)
    job.active_model_id = active.id
    if not active.model_path.is_file():
        job.notes.append(f"The active model {active.id} has no model file; no comparison.")
        return
    details = job.dir / ACTIVE_EVALUATION_FILE
    cmd = _training_command("evaluate", "--task", job.options.task, "--model", str(active.model_path),
                            "--data", job.options.data, "--split", str(evaluation.get("split", "test")),
                            "--details", str(details))
    if _run_logged(cmd, log_fh) != 0 or not details.is_file():
        details.unlink(missing_ok=True)
        job.notes.append(f"Evaluating the active model {active.id} failed; see the log.")


def _failure_message(job: Job, returncode: int) -> str:
    progress = read_progress(job.progress_file)
    if progress.error:
        return progress.error
    tail = [line for line in job.log_tail(2000).splitlines() if line.strip()]
    return f"Training exited with code {returncode}." + (f" Last output: {tail[-1]}" if tail else "")


def _register(job: Job, manager: JobManager) -> None:
    """Copy model + card into the registry; SIGTERM waits so a cancel cannot split this step."""
    card = job.card() or {}
    chosen = {k: v for k, v in asdict(job.options).items()
              if v is not None and k not in ("task", "data", "arch", "lr")}
    card = {**card, "task": job.options.task, "job_id": job.id, "data": job.options.data,
            "options": {**chosen, **(card.get("options") or {})}}   # the fit's resolved values win
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        if (job.dir / CANCEL_FILE).exists():
            return
        entry = ModelRegistry().register(job.out_dir / "model.keras", card)
        evaluation = job.evaluation()
        if evaluation is not None:
            write_json_atomic(entry.model_path.parent / "evaluation.json", evaluation)
        job.model_id, job.state, job.finished = entry.id, SUCCEEDED, _now()
        manager._save(job)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def run_job(job_dir: Path) -> int:
    """Body of the supervisor process: fit, compare with the active model, register."""
    manager = JobManager(job_dir.parent)
    job = manager._load(job_dir.name)
    job.state, job.started, job.pid = TRAINING, _now(), os.getpid()
    manager._save(job)
    try:
        with open(job.log_file, "ab") as log_fh:
            rc = _run_logged(_training_command("fit", *job.options.fit_args(job.out_dir, job.progress_file)),
                             log_fh)
            if (job.dir / CANCEL_FILE).exists():
                return 1
            evaluation = job.evaluation()
            if rc != 0 or not (job.out_dir / "model.keras").is_file() or evaluation is None:
                job.state, job.finished = FAILED, _now()
                job.message = _failure_message(job, rc) if rc != 0 else \
                    "Training ended without a model or an evaluation; see the log."
                manager._save(job)
                return 1
            job.state = EVALUATING
            manager._save(job)
            _evaluate_active(job, evaluation, log_fh)
            job.state = REGISTERING
            manager._save(job)
            _register(job, manager)
        return 0 if job.state == SUCCEEDED else 1
    except Exception as exc:  # report, never leave a job "running" forever
        log.exception("job %s failed", job.id)
        job.state, job.finished, job.message = FAILED, _now(), f"{type(exc).__name__}: {exc}"
        manager._save(job)
        return 1
    finally:
        _discard_backup(job)
        manager._release(job.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="supervise one job (started by JobManager.start)")
    run.add_argument("job_dir", type=Path)
    sub.add_parser("list", help="print the jobs as JSON lines")
    cancel = sub.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("job_id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        return run_job(args.job_dir.resolve())
    manager = JobManager()
    if args.command == "cancel":
        print(json.dumps(manager.cancel(args.job_id).to_dict()))
    else:
        for job in manager.list():
            print(json.dumps(job.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
