"""The one-job-per-server lock: ``active.lock`` names the running supervisor.

A start is refused while the named process is alive; a lock left by a dead process
(crash, reboot) reads as free and is taken over. Check-and-take happens under an
``flock`` (:meth:`JobLock.guard`) so two browser tabs or two server processes cannot race.
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from core.card import write_json_atomic
from training.jobs.processes import process_token
from training.jobs.record import GUARD_FILE, LOCK_FILE, read_json


class JobLock:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Serialise check-and-take of the lock across threads and processes."""
        with open(self.root / GUARD_FILE, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def holder(self) -> dict | None:
        """The lock's content when its process is alive; a stale lock reads as free."""
        lock = read_json(self.root / LOCK_FILE)
        if not lock or not isinstance(lock.get("pid"), int):
            return None
        token = process_token(lock["pid"])
        if token is None or (lock.get("token") and token != lock["token"]):
            return None
        return lock

    def held_by(self, job_id: str) -> bool:
        holder = self.holder()
        return bool(holder and holder.get("job_id") == job_id)

    def take(self, job_id: str, pid: int) -> None:
        """Name ``pid`` (the job's supervisor) as the holder; call under :meth:`guard`."""
        write_json_atomic(self.root / LOCK_FILE, {"job_id": job_id, "pid": pid, "token": process_token(pid)})

    def release(self, job_id: str) -> None:
        """Free the lock if ``job_id`` holds it."""
        lock = read_json(self.root / LOCK_FILE)
        if lock and lock.get("job_id") == job_id:
            with contextlib.suppress(FileNotFoundError):
                (self.root / LOCK_FILE).unlink()
