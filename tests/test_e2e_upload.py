"""End to end in real headless Chromium (issue 22.3): a video uploaded through the browser's file
picker is analysed and then deleted from the server, unless the user ticks "Keep the uploaded video",
in which case it is kept under its own name and the session points to it. Skips cleanly without
../shared, Chromium or Playwright."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import pytest

from core.config import AppPaths
from core.disk import KEPT_VIDEOS
from core.store import SessionStore
from tests.browser import chromium, facesense_server, open_page, require_browser, wait_until
from tests.test_statistics_page import wmv_clip

ANALYSIS_TIMEOUT_S = 180  # model loading and the analysis on 2 busy cores


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    home = tmp_path_factory.mktemp("e2e_upload_home")
    with facesense_server(home) as url:
        yield url, home, SessionStore(AppPaths(home=home).database_url)


def _files_under(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _analyse_upload(page, clip, keep: bool) -> str:
    """Upload ``clip`` on the Analyse tab, analyse it, and return the outcome message."""
    page.get_by_role("tab", name="Analyse a video").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(clip))
    uploader = page.locator('[data-testid="stFileUploader"]').first
    uploader.get_by_text(clip.name, exact=True).filter(visible=True).first.wait_for(timeout=60_000)  # listed
    box = page.get_by_role("checkbox", name="Keep the uploaded video on the server")
    if box.is_checked() != keep:
        page.locator('[data-testid="stCheckbox"]', has_text="Keep the uploaded video").click()
        wait_until(lambda: box.is_checked() == keep, 30, "the checkbox to change")
    page.get_by_role("button", name="Analyse video").click()
    outcome = page.locator('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"], '
                           '[data-testid="stAlertContentError"]').filter(has_text=clip.name)
    outcome.first.wait_for(timeout=ANALYSIS_TIMEOUT_S * 1000)
    return outcome.first.inner_text()


def test_an_upload_is_deleted_after_analysis_unless_kept_on_purpose(server, shared, tmp_path):
    url, home, store = server
    clip = wmv_clip(shared, tmp_path / "P07 interview.wmv", frames=12)
    uploads = home / "cache" / "uploads"
    with chromium() as browser:
        page = open_page(browser, url, "statistics")
        message = _analyse_upload(page, clip, keep=False)
        assert "P07 interview.wmv: session #1 with 12 frames" in message, message
        first = wait_until(lambda: not (s := store.list_sessions()).empty and s.iloc[0].to_dict(), 30,
                           "the analysed session")
        assert first["source_path"] == "P07 interview.wmv"  # the user's name, never the server's temp copy
        assert _files_under(uploads) == [] and _files_under(home / KEPT_VIDEOS) == []  # nothing kept

        page.reload()
        page.wait_for_selector("h1")
        message = _analyse_upload(page, clip, keep=True)
        assert "session #2 with 12 frames" in message, message
    kept = home / KEPT_VIDEOS / "P07 interview.wmv"
    assert kept.read_bytes() == clip.read_bytes()  # kept, whole, under its own name
    assert store.get_session(2)["source_path"] == str(kept)
    assert _files_under(uploads) == []


@pytest.mark.unit
def test_a_kept_video_gets_a_safe_name_of_its_own_and_never_overwrites(tmp_path):
    from core.disk import kept_video_path

    first = kept_video_path(tmp_path, "P07 interview.MP4")
    assert first == tmp_path / KEPT_VIDEOS / "P07 interview.mp4"
    first.write_bytes(b"one")
    assert kept_video_path(tmp_path, "P07 interview.mp4").name == "P07 interview (2).mp4"  # the first is kept
    sneaky = kept_video_path(tmp_path, "../../etc/passwd;rm -rf.avi")
    assert sneaky.parent == tmp_path / KEPT_VIDEOS and "/" not in sneaky.name and ";" not in sneaky.name
