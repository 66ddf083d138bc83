"""End to end in real headless Chromium: webcam -> WebRTC -> analyzer -> annotated video + session.

One FaceSense server (``streamlit run app.py``) for the module, its home in a tmp dir.
Chromium's fake camera plays a real webcam clip; the test presses START on the Live
page, waits until annotated frames flow back, checks the recorded session through the
store, saves a screenshot, presses STOP. Browsers without a camera, or refusing it, check
that the page explains the error. Skips cleanly without ../shared, Chromium or Playwright.
"""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import io
import time

import numpy as np
import pytest

from core.config import EMOTIONS, AppPaths
from core.overlay import face_color
from core.store import SessionStore
from tests.browser import (
    chromium,
    chromiums,
    facesense_server,
    fake_camera,
    image_spread,
    open_page,
    panel_metrics,
    press_webrtc_button,
    require_browser,
    udp_local_addresses,
    wait_until,
    webrtc_frame,
    webrtc_video_state,
)
from tests.conftest import shared_path

FRAMES_TIMEOUT_S = 180  # server start, model loading and WebRTC on 2 busy cores
SERVER: dict = {}  # the server's pid


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    home = tmp_path_factory.mktemp("e2e_home")
    with facesense_server(home, on_start=lambda proc: SERVER.update(pid=proc.pid)) as url:
        yield url, SessionStore(AppPaths(home=home).database_url)


def overlay_pixels(png: bytes, face_id: int = 1, tolerance: int = 40) -> int:
    """Pixels close to face ``face_id``'s overlay colour (its label background) in a screenshot."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    b, g, r = face_color(face_id)
    return int((np.abs(rgb - np.array([r, g, b])).max(axis=2) < tolerance).sum())


def test_live_page_analyses_the_webcam_and_records_a_session(server, tmp_path):
    url, store = server
    camera = fake_camera(shared_path("video", "single_face_640x480.avi"), tmp_path)
    with chromium(fake_video=camera) as browser:
        page = open_page(browser, url, "live")
        press_webrtc_button(page, "START")

        state = wait_until(lambda: (s := webrtc_video_state(page)) and s["width"] > 0 and s["time"] > 1 and s,
                           FRAMES_TIMEOUT_S, "video to come back from the server")
        assert (state["width"], state["height"]) == (640, 480)

        def recorded():
            sessions = store.list_sessions()
            return not sessions.empty and int(sessions["row_count"].iloc[0]) >= 10 and sessions.iloc[0].to_dict()

        session = wait_until(recorded, FRAMES_TIMEOUT_S, "10 analysed faces in the session store")
        assert session["status"] == "recording" and session["source"] == "webcam"
        # The server serves localhost only (.streamlit/config.toml): so do its WebRTC media sockets.
        udp = udp_local_addresses(SERVER["pid"])
        assert udp and udp <= {"127.0.0.1", "::1"}, udp
        webrtc_frame(page).locator("video").first.scroll_into_view_if_needed()
        wait_until(lambda: page.get_by_text("Recording session #").count() > 0, 30, "the live panel")

        # The video in the page carries the overlay: face #1's label colour is on screen.
        video_png = wait_until(lambda: (shot := webrtc_frame(page).locator("video").first.screenshot())
                               and overlay_pixels(shot) > 150 and shot, 60, "annotated frames in the player")
        shot_path = tmp_path / "live_page.png"
        page.screenshot(path=str(shot_path))
        assert image_spread(shot_path.read_bytes()) > 10, "page screenshot is blank"
        assert image_spread(video_png) > 10, "video element is blank"

        press_webrtc_button(page, "STOP")
        ended = wait_until(lambda: (s := store.get_session(int(session["id"])))["status"] == "ended" and s,
                           60, "the session to end on STOP")
    assert ended["frame_count"] >= 5
    rows = store.results(int(session["id"]))
    assert len(rows) >= 10
    assert 1 in set(rows["face_id"])
    assert rows["dominant_emotion"].isin(EMOTIONS).all()
    assert rows["age"].between(1, 100).all(), rows["age"].describe()
    assert rows["p_female"].between(0, 1).all()
    assert (rows["box_w"] >= 40).all() and (rows["box_x"] + rows["box_w"] <= 640 + 10).all()
    print(f"screenshot: {shot_path}")


@pytest.mark.parametrize("browser_options, error, advice", [
    ({"fake_device": False}, "NotFoundError", "no camera is connected"),       # no webcam at all
    ({"allow_camera": False}, "NotAllowedError", "camera access was refused"),  # user clicked Block
], ids=["absent", "refused"])
def test_live_page_explains_a_missing_or_refused_camera(server, browser_options, error, advice):
    url, store = server
    before = len(store.list_sessions())
    with chromium(**browser_options) as browser:
        page = open_page(browser, url, "live")
        press_webrtc_button(page, "START")
        player = webrtc_frame(page)
        wait_until(lambda: error in player.locator("body").inner_text(), 60, f"the player to report {error}")
        assert page.get_by_text(advice).count() == 1                     # the page says what to do
        assert player.get_by_role("button", name="START").count() == 1  # still usable, no crash
    assert len(store.list_sessions()) == before  # no camera, no session


def test_two_users_at_once_each_record_their_own_faces(server, tmp_path):
    """Two browsers, two fake cameras (one face, three faces), streaming at the same time: each
    tab has its own analyzer, session and panel; both panels update; the recorded timestamps
    are the analysed frames' own capture times."""
    url, store = server
    cameras = []
    for name in ("single_face_640x480.avi", "multi_face_640x480.avi"):
        folder = tmp_path / name.split("_")[0]
        folder.mkdir()
        cameras.append(fake_camera(shared_path("video", name), folder))
    before = set(store.list_sessions()["id"]) if not store.list_sessions().empty else set()
    with chromiums(cameras) as browsers:
        pages = [open_page(browser, url, "live") for browser in browsers]
        for page in pages:
            press_webrtc_button(page, "START")
        started = time.time()
        for page in pages:
            wait_until(lambda p=page: (q := webrtc_video_state(p)) and q["width"] > 0 and q["time"] > 1,
                       FRAMES_TIMEOUT_S, "video back from the server in both tabs")
            webrtc_frame(page).locator("video").first.scroll_into_view_if_needed()

        def sessions():
            table = store.list_sessions()
            ours = table[~table["id"].isin(before) & (table["row_count"] >= 10)] if not table.empty else table
            return ours.to_dict("records") if len(ours) == 2 else None

        ours = wait_until(sessions, FRAMES_TIMEOUT_S, "10 analysed faces in each of two sessions")
        assert {s["status"] for s in ours} == {"recording"}
        # Both panels update while both stream: their analysed-frame counts move on.
        seen = [[], []]
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            for i, page in enumerate(pages):
                value = panel_metrics(page).get("Frames")
                if value and (not seen[i] or seen[i][-1] != value):
                    seen[i].append(value)
            time.sleep(0.3)
        assert all(len(values) >= 3 for values in seen), seen
        quality = [webrtc_video_state(p) for p in pages]
        for page in pages:
            press_webrtc_button(page, "STOP")
        ids = [int(s["id"]) for s in ours]
        wait_until(lambda: all(store.get_session(i)["status"] == "ended" for i in ids), 60, "both sessions to end")
    stopped = time.time()
    faces = {}
    for session_id in ids:
        rows = store.results(session_id)
        per_frame = rows.groupby("timestamp")["face_id"].nunique()
        stamps = per_frame.index.to_numpy()
        assert (stamps >= started - 5).all() and (stamps <= stopped).all()  # real capture times of this run
        assert (np.diff(stamps) > 0).all()                              # one per analysed frame, in order
        assert store.get_session(session_id)["frame_count"] >= len(stamps)
        faces[session_id] = float(np.median(per_frame))
    # Each tab recorded its own camera: one face in one session, three in the other.
    assert sorted(faces.values())[0] == 1.0 and sorted(faces.values())[1] >= 2.0, faces
    assert all(q["total"] > 0 for q in quality)
