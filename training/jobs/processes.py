"""Starting, probing and stopping the supervisor's process group.

A supervisor runs in its own session (process group), so one signal to the group stops
it and the fit it started. A process is identified by its pid *and* start time
(:func:`process_token`), so a reused pid never passes for a job that died.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from core.config import REPO_ROOT

_children: dict[int, subprocess.Popen] = {}   # supervisors this process started (for reaping)


def spawn(cmd: list[str], log_fh: BinaryIO) -> int:
    """Start ``cmd`` in a new session (its own process group), output to ``log_fh``; its pid."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    _children[proc.pid] = proc
    return proc.pid


def run_logged(cmd: list[str], log_fh: BinaryIO) -> int:
    """Run ``cmd`` to its end, its output appended to ``log_fh`` after the command line; its exit code."""
    log_fh.write(f"\n$ {' '.join(cmd)}\n".encode())
    log_fh.flush()
    return subprocess.call(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT)


def process_token(pid: int) -> str | None:
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


def group_members(pgid: int) -> list[int]:
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


def stop_group(pgid: int, grace: float = 10.0) -> bool:
    """SIGTERM the group, SIGKILL what is left after ``grace`` seconds; True when all gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        _signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process_token(pgid)  # reaps our own supervisor child
            if not group_members(pgid):
                return True
            time.sleep(0.1)
    return not group_members(pgid)
