"""Real-browser helpers for end-to-end tests: a FaceSense server and Debian's headless Chromium.

Reuses the server and fake-camera helpers of ``scripts/screenshot.py`` (one way to
start the app for screenshots and tests alike). Chromium is the system one
(``apt-get install chromium``), launched through Playwright's Python API: no browser
is ever downloaded. Tests that need it call :func:`require_browser` and are skipped
with a clear reason where it is missing.

    with facesense_server(home) as url, chromium(fake_video=y4m) as browser:
        page = open_page(browser, url, "live")
        press_webrtc_button(page, "START")
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import pytest

from scripts.screenshot import streamlit_server, video_to_y4m

T = TypeVar("T")

CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-dev-shm-usage",
)
FAKE_CAMERA_ARGS = ("--use-fake-device-for-media-stream",)
WEBRTC_IFRAME = 'iframe[title*="streamlit_webrtc"]'


def chromium_path() -> str | None:
    found = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def require_browser() -> str:
    """Chromium's path, or skip the test (Playwright or Chromium not installed)."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return path


def fake_camera(video: Path, out_dir: Path, seconds: float = 4.0, fps: float = 10.0) -> Path:
    """Y4M of the first ``seconds`` of ``video`` at ``fps`` for Chromium's fake camera (it loops the file).

    Frame size is kept (a real webcam's 640x480); 640x480 at 10 fps for 4 s is about 18 MB."""
    return video_to_y4m(Path(video), Path(out_dir) / "camera.y4m", max_seconds=seconds, fps=fps)


@contextmanager
def facesense_server(home: Path, timeout_s: float = 180.0, env: dict | None = None,
                     on_start=None, extra_args: tuple[str, ...] = (), host: str = "localhost") -> Iterator[str]:
    """``streamlit run app.py`` on a free port with ``FACESENSE_HOME=home``; yields its URL.
    ``on_start(proc)`` gets the server's process once it answers; ``extra_args`` are more
    ``streamlit run`` options, ``host`` the URL's host name."""
    with streamlit_server(Path(home), timeout_s=timeout_s, env=env, on_start=on_start,
                          extra_args=extra_args, host=host) as url:
        yield url


def udp_local_addresses(pid: int) -> set[str]:
    """Local IP addresses of the UDP sockets process ``pid`` holds (Linux /proc)."""
    import ipaddress
    import socket
    import struct

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, v6 in (("/proc/net/udp", False), ("/proc/net/udp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            if v6:
                words = struct.unpack("<4I", raw)
                found.add(str(ipaddress.IPv6Address(struct.pack(">4I", *words))))
            else:
                found.add(socket.inet_ntoa(raw[::-1]))
    return found


def _chromium_args(fake_video: Path | None, fake_device: bool, allow_camera: bool,
                   extra_args: tuple[str, ...]) -> list[str]:
    args = list(CHROMIUM_ARGS)
    args.append("--use-fake-ui-for-media-stream" if allow_camera else "--deny-permission-prompts")
    if fake_device:
        args += list(FAKE_CAMERA_ARGS)
        if fake_video is not None:
            args.append(f"--use-file-for-fake-video-capture={fake_video}")
    return args + list(extra_args)


@contextmanager
def chromium(fake_video: Path | None = None, fake_device: bool = True, allow_camera: bool = True,
             extra_args: tuple[str, ...] = ()):
    """Headless Chromium. ``fake_device``: a synthetic camera (``fake_video``: this Y4M file
    instead); without it the browser has no camera at all, as on a machine without one.
    ``allow_camera=False`` refuses camera access, as a user who clicks "Block" does."""
    with chromiums([fake_video], fake_device, allow_camera, extra_args) as browsers:
        yield browsers[0]


@contextmanager
def chromiums(fake_videos: list[Path | None], fake_device: bool = True, allow_camera: bool = True,
              extra_args: tuple[str, ...] = ()):
    """One headless Chromium per entry of ``fake_videos`` (each its own fake camera), as
    that many users on different computers; Playwright's sync API allows one driver, so all
    are launched from it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browsers = []
        try:
            for video in fake_videos:
                browsers.append(pw.chromium.launch(
                    executable_path=require_browser(), headless=True,
                    args=_chromium_args(video, fake_device, allow_camera, extra_args)))
            yield browsers
        finally:
            for browser in browsers:
                browser.close()


def wait_until(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def open_page(browser, url: str, path: str = "", viewport=(1280, 900), timeout_s: float = 180.0):
    """Open the app's home, then the page at ``path``, and wait until its title is drawn.

    Home first, as a user does: a deep link as a fresh server's very first request runs the
    page outside the app shell (Streamlit's legacy ``pages/`` mode, docs/foundation.md)."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(timeout_s * 1000)
    page.goto(url)
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    if path:
        page.goto(f"{url}/{path}")
        page.wait_for_selector("h1", timeout=timeout_s * 1000)
    return page


def webrtc_frame(page):
    """The streamlit-webrtc component's iframe (its buttons and <video> live inside)."""
    return page.frame_locator(WEBRTC_IFRAME).first


def press_webrtc_button(page, name: str, timeout_s: float = 120.0) -> None:
    webrtc_frame(page).get_by_role("button", name=name).click(timeout=timeout_s * 1000)


def webrtc_video_state(page) -> dict:
    """The component's <video>: size, play position, readiness, and ``getVideoPlaybackQuality()``
    (frames the browser received, ``total``, and ``dropped``); empty before the <video> exists."""
    video = webrtc_frame(page).locator("video")
    if video.count() == 0:
        return {}
    return video.first.evaluate(
        "v => { const q = v.getVideoPlaybackQuality();"
        " return {width: v.videoWidth, height: v.videoHeight, time: v.currentTime, ready: v.readyState,"
        " paused: v.paused, total: q.totalVideoFrames, dropped: q.droppedVideoFrames}; }"
    )


def panel_metrics(page) -> dict[str, str]:
    """The Live panel's metrics as shown: label -> value text (e.g. ``{"Video": "29.8 fps"}``)."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')].map(m => [
            (m.querySelector('[data-testid="stMetricLabel"]') || m).innerText.trim(),
            (m.querySelector('[data-testid="stMetricValue"]') || m).innerText.trim()]))"""
    )


def image_spread(png: bytes) -> float:
    """Standard deviation of the pixel values of a PNG: about 0 for a blank (one-colour) image."""
    import io

    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32).std())
