"""Reading data sets from a folder, .zip, .tar or .tar.gz without trusting member names.

Members are read in memory; nothing is extracted for training. A member with an
absolute path or a ``..`` component is rejected outright (the classic "zip slip"),
and :func:`safe_extract` (for callers that need the files on disk) refuses to write
outside its target. One damaged member (bad CRC, broken deflate stream, unreadable
file) is reported as ``None`` so the loaders skip and count it; a damaged archive
as a whole is a :class:`DataError`.
"""
from __future__ import annotations

import logging
import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

log = logging.getLogger(__name__)

class DataError(ValueError):
    """Bad input data: the message names the file and the problem, for the user."""


def check_member_name(name: str, archive: Path) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive.name}: unsafe member path {name!r} (absolute or '..'); refusing to read it")


def archive_kind(path: Path) -> str:
    """'dir', 'zip' or 'tar' — by content, not by file name."""
    if path.is_dir():
        return "dir"
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError as exc:
        raise DataError(f"{path.name}: unreadable ({exc})") from exc
    raise DataError(f"{path.name}: not a folder, .zip or .tar(.gz) archive")


def _read_member(archive: Path, name: str, read: Callable[[], bytes]) -> bytes | None:
    """One member's bytes, or None (logged) when that member alone is damaged."""
    try:
        return read()
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        log.warning("%s: member %s is unreadable (%s); skipping it", archive.name, name, exc)
        return None


def iter_members(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """Yield (relative name, bytes) for every regular file in a folder or archive; the bytes
    are None for a member that cannot be read (the caller skips and counts it)."""
    path = Path(path)
    kind = archive_kind(path)
    try:
        if kind == "dir":
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                name = file.relative_to(path).as_posix()
                yield name, _read_member(path, name, file.read_bytes)
        elif kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    check_member_name(info.filename, path)
                    yield info.filename, _read_member(path, info.filename, lambda info=info: zf.read(info))
        else:
            with tarfile.open(path) as tf:
                for info in tf:
                    if not info.isfile():
                        continue
                    check_member_name(info.name, path)
                    handle = tf.extractfile(info)
                    if handle is not None:
                        yield info.name, handle.read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path.name}: unreadable archive ({exc})") from exc


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract a zip/tar into ``target``, refusing any member that would land outside it."""
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    for name, data in iter_members(archive):
        if data is None:
            raise DataError(f"{Path(archive).name}: member {name!r} is damaged; nothing more extracted")
        dest = (target / name).resolve()
        if os.path.commonpath([target, dest]) != str(target):
            raise DataError(f"{Path(archive).name}: member {name!r} would be written outside {target}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return target
