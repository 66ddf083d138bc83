"""Ctrl+C in the middle of a real batch command, as a user presses it (core.batch's tests, local and on Ray)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO_ROOT


def run_until_line_then_interrupt(command: list[str], prefix: str, expected: str, delay_s: float = 1.0,
                                  exit_timeout_s: float = 120) -> tuple[int, str]:
    """Run ``command`` and send SIGINT ``delay_s`` after its first line that starts with ``prefix``
    (which must contain ``expected``); its exit status and all it printed. Fails the test when it
    does not exit within ``exit_timeout_s`` of the signal, with what it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(prefix):
                assert expected in line, "".join(lines)
                time.sleep(delay_s)  # the next file is being analysed now
                process.send_signal(signal.SIGINT)
                break
        try:
            rest = process.communicate(timeout=exit_timeout_s)[0]
        except subprocess.TimeoutExpired as exc:
            late = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
            pytest.fail(f"no exit {exit_timeout_s:.0f} s after Ctrl+C; it printed:\n{''.join(lines)}{late}")
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, "".join(lines) + rest
