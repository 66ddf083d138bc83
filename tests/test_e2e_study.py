"""End to end in real headless Chromium (issue 17): during a Live session the user presses the marker
button (and a preset's key), the marker is in the store at once, and the Statistics page draws it on
the emotion-over-time chart. Skips cleanly without ../shared, Chromium or Playwright."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import re

import pytest

from core.config import AppPaths
from core.store import SessionStore
from tests.browser import (chromium, facesense_server, fake_camera, open_page, press_webrtc_button, require_browser,
                           wait_until)
from tests.conftest import shared_path

FRAMES_TIMEOUT_S = 180  # server start, model loading and WebRTC on 2 busy cores


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    home = tmp_path_factory.mktemp("e2e_study_home")
    with facesense_server(home) as url:
        yield url, SessionStore(AppPaths(home=home).database_url)


def commit(locator, text: str, key: str = "Enter") -> None:
    """Type into a Streamlit text field and commit it (Enter; Ctrl+Enter for a text area)."""
    locator.click()
    locator.fill(text)
    locator.press(key)


def test_a_marker_pressed_during_live_is_stored_and_drawn_on_the_statistics_chart(server, tmp_path):
    url, store = server
    camera = fake_camera(shared_path("video", "single_face_640x480.avi"), tmp_path)
    with chromium(fake_video=camera) as browser:
        page = open_page(browser, url, "live")
        sidebar = page.locator('[data-testid="stSidebar"]')
        commit(sidebar.get_by_role("textbox", name="Participant", exact=True), "P42")
        commit(sidebar.get_by_role("textbox", name="Tags", exact=True), "condition=A")
        presets = sidebar.get_by_role("textbox", name=re.compile("Marker presets"))
        commit(presets, "stimulus A\nstimulus B", "Control+Enter")
        page.wait_for_timeout(1500)  # the reruns those commits start
        press_webrtc_button(page, "START")
        wait_until(lambda: page.get_by_text("Recording session #").count() > 0, FRAMES_TIMEOUT_S,
                   "the Live panel to say it is recording")
        session = wait_until(lambda: not (s := store.list_sessions()).empty and s.iloc[0].to_dict(), 30,
                             "the recorded session")
        sid = int(session["id"])
        assert (session["participant"], session["tags"]) == ("P42", {"condition": "A"})

        commit(page.get_by_role("textbox", name="Marker", exact=True), "screen 1")  # Enter submits the marker form
        labels = wait_until(lambda: store.markers(sid)["label"].tolist(), 30, "the typed marker in the store")
        assert labels == ["screen 1"]
        page.get_by_text("Marker #").first.wait_for(timeout=30_000)  # the page confirms it

        page.get_by_role("button", name=re.compile("stimulus B")).click()  # a preset's button
        wait_until(lambda: "stimulus B" in store.markers(sid)["label"].tolist(), 30, "the preset marker")

        page.locator("h1").first.click()  # focus on the page, not in a field or the player's iframe
        page.keyboard.press("1")  # the first preset's key
        shortcut = wait_until(lambda: "stimulus A" in store.markers(sid)["label"].tolist() or None, 20,
                              "the marker of key 1 (Streamlit's button shortcut)")
        assert shortcut
        press_webrtc_button(page, "STOP")
        wait_until(lambda: store.get_session(sid)["status"] == "ended", 60, "the session to end on STOP")
    labels = store.markers(sid)["label"].tolist()
    assert labels == ["screen 1", "stimulus B", "stimulus A"]

    with chromium() as browser:
        page = open_page(browser, url, "statistics")
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(timeout=60_000)
        assert chart.locator("text.gtitle", has_text="Emotion over time").count() == 1  # the first chart
        for label in labels:
            wait_until(lambda lab=label: chart.locator("text.annotation-text", has_text=lab).count() >= 1, 30,
                       f"the marker “{label}” on the emotion-over-time chart")
