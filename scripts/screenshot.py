"""Screenshot of the running app for the README (``docs/screenshot.png``).

Starts ``streamlit run app.py`` on a free localhost port with a throw-away
``FACESENSE_HOME``, opens a page in Debian's headless Chromium through Playwright
(no browser download), optionally feeds a video file in as the webcam and presses
START, and saves a PNG, palette-compressed when it would exceed ``--max-kb``.

    .venv/bin/python scripts/screenshot.py                      # home page
    .venv/bin/python scripts/screenshot.py --page live \\
        --video ../shared/video/multi_face_640x480.avi --click START --wait 20
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import core  # noqa: E402,F401  (first, as in every entry point)

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Iterator  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def video_to_y4m(video: Path, out: Path, max_seconds: float = 10.0, fps: float | None = None) -> Path:
    """Chromium's fake camera reads only Y4M/MJPEG: re-encode the clip as raw YUV 4:2:0.

    Raw video is big (640x480 at 30 fps: about 14 MB a second), so only the first
    ``max_seconds`` are kept (Chromium loops the file); ``fps`` drops frames to that rate
    (fewer frames spare the browser's and aiortc's codecs on 2 cores), ``None`` keeps the clip's."""
    import av

    written = 0
    with av.open(str(video)) as src, av.open(str(out), "w", format="yuv4mpegpipe") as dst:
        in_stream = src.streams.video[0]
        rate = fps or float(in_stream.average_rate or 25)
        stream = dst.add_stream("rawvideo", rate=round(rate))
        stream.width, stream.height, stream.pix_fmt = in_stream.width, in_stream.height, "yuv420p"
        next_time = 0.0
        for frame in src.decode(in_stream):
            t = frame.time if frame.time is not None else written / rate
            if t >= max_seconds:
                break
            if t + 1e-6 < next_time:
                continue
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
            next_time += 1.0 / rate
            written += 1
        for packet in stream.encode():
            dst.mux(packet)
    if written == 0:
        raise ValueError(f"no frames decoded from {video}")
    return out


@contextmanager
def streamlit_server(home: Path, timeout_s: float = 120.0, env: dict | None = None,
                     on_start=None, extra_args: tuple[str, ...] = (), host: str = "localhost") -> Iterator[str]:
    """A FaceSense server on a free port; yields its URL and stops it afterwards.

    ``env``: extra environment variables; ``on_start(proc)``: called with the server's
    ``subprocess.Popen`` once it answers (benchmarks read its CPU time); ``extra_args``: more
    ``streamlit run`` options (``--server.address 0.0.0.0``); ``host``: the URL's host name."""
    port = free_port()
    env = {**os.environ, "FACESENSE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", *extra_args]
    log = open(home / "streamlit.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {home / 'streamlit.log'}")
            time.sleep(0.5)
        if on_start is not None:
            on_start(proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def shrink_png(data: bytes, max_kb: int) -> bytes:
    """Palette-compress when the plain PNG is too big for the repository."""
    if len(data) <= max_kb * 1024:
        return data
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def click_button(page, name: str, timeout_s: float = 90.0) -> None:
    """Click a button by its label, also inside component iframes (the webcam player is one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in page.frames:
            button = frame.get_by_role("button", name=name)
            if button.count():
                button.first.click()
                return
        time.sleep(1)
    raise RuntimeError(f"no button {name!r} appeared within {timeout_s:.0f} s")


def take(args: argparse.Namespace) -> Path:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which(args.chromium) or args.chromium
    with tempfile.TemporaryDirectory(prefix="facesense-shot-") as tmp:
        home = Path(tmp)
        browser_args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run",
                        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        if args.video:
            y4m = video_to_y4m(Path(args.video), home / "camera.y4m")
            browser_args.append(f"--use-file-for-fake-video-capture={y4m}")
        with streamlit_server(home) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=browser_args)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            # Home first: Streamlit 1.67's very first script run, with a pages/ folder present,
            # uses its legacy navigation (see docs/foundation.md); from the second run on it's app.py's.
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector("h1", timeout=120_000)
            if args.page:
                page.goto(f"{url}/{args.page}", wait_until="networkidle")
            page.wait_for_selector("h1", timeout=120_000)
            if args.click:
                click_button(page, args.click)
            time.sleep(args.wait)
            data = page.screenshot(type="png")
            browser.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(shrink_png(data, args.max_kb))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", default="", help="URL path of the page: '' (home), live, statistics, training")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--video", help="video file fed to Chromium as the webcam")
    parser.add_argument("--click", help="button to press after loading, e.g. START")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds to let the page settle")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--max-kb", type=int, default=300)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    args = parser.parse_args(argv)
    out = take(args)
    print(f"{out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
