"""Files FaceSense keeps: content hashes, and size caps for the folders it fills by itself.

:func:`file_hash` names a file by its content (a batch's repeats, the graph cache's keys).

``prune`` deletes the oldest files of one folder until it fits its cap (and files older than
an age limit), never a file named in ``keep`` and never one written in the last minute (it
may still be in use). The caps, in MB, can be changed with environment variables:

- ``FACESENSE_UPLOADS_MAX_MB`` (default 5120): ``<FACESENSE_HOME>/jobs/uploads/``, training data uploads;
- ``FACESENSE_CACHE_MAX_MB`` (default 5120): ``<FACESENSE_HOME>/cache/*.npz``, decoded training sets;
- video uploads (``<FACESENSE_HOME>/cache/uploads/``) are deleted when their analysis ends; a copy
  left by a crash is deleted after ``VIDEO_UPLOAD_MAX_AGE_S`` (a day). A video the user asks to keep
  goes to ``<FACESENSE_HOME>/videos/`` instead (:func:`kept_video_path`), which nothing prunes.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

MB = 1 << 20
IN_USE_S = 60.0  # files written more recently than this are never pruned
VIDEO_UPLOAD_MAX_AGE_S = 24 * 3600.0


KEPT_VIDEOS = "videos"  # under FACESENSE_HOME: uploads kept on purpose


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content: the same recording under another name or folder is the same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def kept_video_path(home: Path, name: str) -> Path:
    """A new file in ``<home>/videos/`` named after the user's file (made safe, never overwriting).

    Only the name's letters, digits and ``-_. ()`` survive, so an upload cannot name a path.
    """
    folder = Path(home) / KEPT_VIDEOS
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(name).name
    stem = "".join(c if c.isalnum() or c in "-_. ()" else "_" for c in Path(base).stem).strip(". ") or "video"
    suffix = "".join(c for c in Path(base).suffix.lower() if c.isalnum() or c == ".")[:10]
    candidate, n = folder / f"{stem[:120]}{suffix}", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem[:120]} ({n}){suffix}"
    return candidate


def cap_bytes(variable: str, default_mb: int) -> int:
    """A cap from the environment (in MB), else the default; a bad value falls back to the default."""
    try:
        return int(float(os.environ.get(variable, default_mb)) * MB)
    except ValueError:
        log.warning("%s=%r is not a number of MB; using %d", variable, os.environ[variable], default_mb)
        return default_mb * MB


def uploads_cap() -> int:
    return cap_bytes("FACESENSE_UPLOADS_MAX_MB", 5120)


def cache_cap() -> int:
    return cap_bytes("FACESENSE_CACHE_MAX_MB", 5120)


def prune(folder: Path, max_bytes: int | None = None, *, pattern: str = "*", keep: Iterable[Path] = (),
          max_age_s: float | None = None, in_use_s: float = IN_USE_S) -> list[Path]:
    """Delete files in ``folder`` (not below it) matching ``pattern``: those older than ``max_age_s``,
    then the oldest until the rest take at most ``max_bytes``. Returns what was deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    kept = {Path(p).resolve() for p in keep}
    now = time.time()
    files = []
    for path in folder.glob(pattern):
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file() and path.resolve() not in kept:
            files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files) + sum(p.stat().st_size for p in kept if p.is_file()
                                                      and p.parent.resolve() == folder.resolve())
    removed = []
    for mtime, size, path in sorted(files):  # oldest first
        if now - mtime < in_use_s:
            continue
        too_old = max_age_s is not None and now - mtime > max_age_s
        too_big = max_bytes is not None and total > max_bytes
        if not (too_old or too_big):
            continue
        try:
            path.unlink()
        except OSError as exc:
            log.warning("cannot delete %s: %s", path, exc)
            continue
        total -= size
        removed.append(path)
    if removed:
        log.info("deleted %d file(s) from %s to keep it under its cap", len(removed), folder)
    return removed
