"""The job API used by the Training page (and the tests): one job at a time per server."""
from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from core.config import app_paths
from training.jobs.errors import JobBusy, JobError
from training.jobs.lock import JobLock
from training.jobs.processes import spawn, stop_group
from training.jobs.progress import Progress, read_progress
from training.jobs.record import CANCELLED, FAILED, PROGRESS_FILE, UPLOADS_DIR, Job, JobStore, now_iso
from training.jobs.uploads import UploadFolder
from training.options import TrainOptions

log = logging.getLogger(__name__)


def supervisor_command(job_dir: Path) -> list[str]:
    """The command that supervises one job (``python -m training.jobs run JOB_DIR``)."""
    return [sys.executable, "-m", "training.jobs", "run", str(job_dir)]


class JobManager:
    """Start, watch and cancel background trainings; store uploads. One job at a time per server."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else app_paths().jobs_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.root)
        self.lock = JobLock(self.root)
        self.uploads = UploadFolder(self.root / UPLOADS_DIR)

    # -- reading ------------------------------------------------------------------
    def status(self, job_id: str) -> Job:
        """The job's state; a job whose processes died without a word is marked failed."""
        job = self.store.load(job_id)
        if job.done or self.lock.held_by(job_id):
            return job
        with self.lock.guard():
            job = self.store.load(job_id)   # re-read: it may have finished meanwhile
            if not job.done and not self.lock.held_by(job_id):
                job.state, job.finished = FAILED, now_iso()
                job.message = job.message or "The training process stopped unexpectedly (see the log)."
                self.store.save(job)
                self.lock.release(job_id)
        return job

    def progress(self, job_id: str) -> Progress:
        return read_progress(self.root / job_id / PROGRESS_FILE)

    def result(self, job_id: str) -> Job | None:
        """The finished job (with its evaluation files), or None while it still runs."""
        job = self.status(job_id)
        return job if job.done else None

    def current(self) -> Job | None:
        """The job running now on this server, if any."""
        holder = self.lock.holder()
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
        for job_id in self.store.ids():
            with contextlib.suppress(JobError, KeyError, TypeError, ValueError):
                jobs.append(self.status(job_id))
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    # -- acting -------------------------------------------------------------------
    def start(self, options: TrainOptions) -> Job:
        """Start a training in the background; raises :class:`JobBusy` while one runs."""
        try:
            options.validate()
        except ValueError as exc:
            raise JobError(str(exc)) from exc
        options = replace(options, data=str(Path(options.data).expanduser().resolve()))
        with self.lock.guard():
            holder = self.lock.holder()
            if holder:
                raise JobBusy(f"A training job ({holder['job_id']}) is already running on this server. "
                              "Please wait for it to finish or cancel it first.")
            job_id = f"{options.task}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
            job = Job(job_id, self.root / job_id, options, created=now_iso())
            job.dir.mkdir(parents=True)
            self.store.save(job)
            with open(job.log_file, "ab") as log_fh:
                pid = spawn(supervisor_command(job.dir), log_fh)
            self.lock.take(job_id, pid)
        log.info("started training job %s (pid %d)", job_id, pid)
        return job

    def cancel(self, job_id: str, grace: float = 10.0) -> Job:
        """Stop the job's processes, mark it cancelled; nothing gets registered.

        A job that already finished is returned unchanged (it may have succeeded
        in the moment before the click).
        """
        job = self.status(job_id)
        if job.done:
            return job
        job.request_cancel()
        holder = self.lock.holder()
        if holder and holder.get("job_id") == job_id:
            if not stop_group(holder["pid"], grace):
                log.warning("job %s: processes of group %d still alive after SIGKILL", job_id, holder["pid"])
        with self.lock.guard():
            job = self.store.load(job_id)
            if not job.done:
                job.state, job.finished, job.message = CANCELLED, now_iso(), "Cancelled by the user."
                self.store.save(job)
            self.lock.release(job_id)
        job.discard_backup()
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

    # -- uploads ------------------------------------------------------------------
    def uploads_in_use(self) -> set[Path]:
        """Uploads a job may still read: the data of every job that has not ended."""
        return {Path(job.options.data).resolve() for job in self.list() if not job.done and job.options.data}

    def save_upload(self, name: str, chunks: BinaryIO, task: str) -> Path:
        """Store an uploaded data file under ``jobs_dir/uploads`` with a sanitised name.

        Refuses unsupported types before writing anything. The stored name starts
        with a hash of the content, so uploading the same file twice keeps one copy.
        """
        return self.uploads.save(name, chunks, task, in_use=self.uploads_in_use())

    def discard_upload(self, path: str | Path) -> bool:
        """Delete an upload that was refused or given up (True if deleted); never one a running job reads,
        never anything outside the uploads folder."""
        return self.uploads.discard(path, in_use=self.uploads_in_use())

    def prune_uploads(self, keep: list[Path] = ()) -> list[Path]:
        """Keep ``jobs/uploads`` under :func:`core.disk.uploads_cap` (oldest first; never in use)."""
        return self.uploads.prune(keep, in_use=self.uploads_in_use())
