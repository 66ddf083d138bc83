"""Uploaded data files: safe names, accepted types, one copy each, a size cap."""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO, Iterable

from core import tasks
from core.config import TASKS
from core.disk import prune, uploads_cap
from training.jobs.errors import JobError

# Upload types the data readers understand, per task (FER2013 CSV or image-folder zip;
# UTKFace as zip, tar or compressed tar): see core.tasks.DATA_KINDS
UPLOAD_SUFFIXES: dict[str, tuple[str, ...]] = {task: tasks.get(task).upload_suffixes for task in TASKS}

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


class UploadFolder:
    """``jobs/uploads``: uploads named by a hash of their content, kept under a size cap.

    ``in_use`` (the uploads a job that has not ended reads) comes from the caller, who
    knows the jobs: such a file is never deleted.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def save(self, name: str, chunks: BinaryIO, task: str, in_use: Iterable[Path] = ()) -> Path:
        """Store an upload with a sanitised name; refuses unsupported types before writing anything.
        The stored name starts with a hash of the content, so the same file twice keeps one copy."""
        upload_suffix(name, task)
        self.folder.mkdir(exist_ok=True)
        digest = hashlib.sha1()
        tmp = self.folder / f".partial-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                for block in iter(lambda: chunks.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            final = self.folder / f"{digest.hexdigest()[:10]}-{sanitize_filename(name)}"
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.prune(keep=[final], in_use=in_use)
        return final

    def discard(self, path: str | Path, in_use: Iterable[Path] = ()) -> bool:
        """Delete an upload (True if deleted); never one in use, never anything outside the folder."""
        path = Path(path).resolve()
        if path.parent != self.folder.resolve() or path in set(in_use):
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def prune(self, keep: Iterable[Path] = (), in_use: Iterable[Path] = ()) -> list[Path]:
        """Keep the folder under :func:`core.disk.uploads_cap` (oldest first; never in use)."""
        broken = prune(self.folder, pattern=".partial-*", max_age_s=3600)  # copies cut off by a crash
        return broken + prune(self.folder, uploads_cap(), keep=[*keep, *in_use])
