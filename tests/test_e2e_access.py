"""A FaceSense server reachable from other computers, in real headless Chromium: without a
password it serves no data; with one, wrong passwords wait and the right one opens the app.

The server listens on ``--server.address 0.0.0.0`` (every interface, exactly the documented LAN
set-up) and the browser reaches it through 127.0.0.1; ``FACESENSE_TEST_LAN_ADDRESS=192.168.1.20``
makes it listen on, and the browser use, that address instead. No override of the password rule
is used here: the server needs a password only because of the address it listens on.
"""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import os
import time

import pytest

from core import access
from core.config import AppPaths
from core.store import SessionStore
from seed_sessions import seed_session
from tests.browser import chromium, facesense_server, require_browser, wait_until

PASSWORD = "lab-password-2024"
SECRET_NAME = "participant-17"
LAN = os.environ.get("FACESENSE_TEST_LAN_ADDRESS", "").strip()
ADDRESS, HOST = (LAN, LAN) if LAN else ("0.0.0.0", "127.0.0.1")
TIMEOUT_S = 180


def _lan_server(home, env: dict | None = None):
    seed_session(SessionStore(AppPaths(home=home).database_url), 60, name=SECRET_NAME)
    return facesense_server(home, env={"FACESENSE_PASSWORD_HASH": "", "FACESENSE_REQUIRE_PASSWORD": "",
                                       **(env or {})},
                            extra_args=("--server.address", ADDRESS), host=HOST)


def _body(page) -> str:
    return page.locator("body").inner_text()


def _html(page) -> str:
    """The whole document, attributes included (a select box's chosen value is not in the text)."""
    return page.content()


@pytest.fixture
def home(tmp_path):
    require_browser()
    return tmp_path


def test_without_a_password_a_lan_server_serves_no_data(home):
    with _lan_server(home) as url, chromium(fake_device=False) as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_S * 1000)
        for path in ("", "statistics", "live", "training"):  # deep links included (first request: no app.py)
            page.goto(f"{url}/{path}")
            wait_until(lambda: "has no password" in _body(page), TIMEOUT_S, f"the refusal on /{path}")
            text = _body(page)
            assert "python -m core.access hash" in text
            assert SECRET_NAME not in _html(page) and "Active models" not in text and "Analyse a video" not in text
            assert page.get_by_role("button").filter(has_text="START").count() == 0


def test_wrong_passwords_wait_and_the_right_one_opens_the_app(home):
    encoded = access.hash_password(PASSWORD)
    with _lan_server(home, {"FACESENSE_PASSWORD_HASH": encoded}) as url, chromium(fake_device=False) as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_S * 1000)
        page.goto(f"{url}/statistics")
        field = page.get_by_label("Password", exact=True)
        field.wait_for()
        assert SECRET_NAME not in _html(page) and "Active models" not in _body(page)

        def submit(password: str) -> float:
            started = time.monotonic()
            field.fill(password)
            field.press("Enter")
            return started

        submit("not the password")
        wait_until(lambda: "Wrong password" in _body(page), 60, "the refusal of a wrong password")
        assert "next attempt is possible in 1 s" in _body(page)
        time.sleep(1.2)
        submit("still wrong")
        wait_until(lambda: "possible in 2 s" in _body(page), 60, "the doubled wait")
        started = submit(PASSWORD)  # right, but within the 2 s wait: refused without being checked
        wait_until(lambda: "Too many wrong passwords" in _body(page), 60, "the wait to be enforced")
        assert time.monotonic() - started < 2.0, "the check must be refused during the wait, not delayed"
        assert SECRET_NAME not in _html(page)
        time.sleep(2.2)
        submit(PASSWORD)
        wait_until(lambda: SECRET_NAME in _html(page), TIMEOUT_S, "the Statistics page after the login")
        # (a fresh server's first request, a deep link, runs the page without app.py: no sidebar of models here)
        page.get_by_role("link", name="Training").click()  # the login lasts for this browser session
        wait_until(lambda: "Train your own" in _body(page), TIMEOUT_S, "the Training page")
        assert page.get_by_label("Password", exact=True).count() == 0

        other = browser.new_context().new_page()  # another visitor (no cookies, new session): asked again
        other.set_default_timeout(TIMEOUT_S * 1000)
        other.goto(url)
        other.get_by_label("Password", exact=True).wait_for()
        assert SECRET_NAME not in _html(other) and "Active models" not in _body(other)
