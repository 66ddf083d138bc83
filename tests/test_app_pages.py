"""Every page of the app renders through Streamlit's real script runner without an exception.

``AppTest`` runs ``app.py`` (navigation, home text, sidebar of active models) as the
server would, then switches to each page. The app home is the per-test
``FACESENSE_HOME`` from conftest, so nothing here touches the user's database or registry.

Two ways a page is reached in a real server, both tested:

* through the app shell: ``app.py`` runs, calls ``st.navigation`` and then the page;
  this is every run once the server has executed ``st.navigation`` once;
* alone: Streamlit 1.67 starts in its legacy mode while a folder named ``pages/`` sits
  beside ``app.py`` and, on the server's very first script run (a deep link such as
  ``/live`` right after start), runs the page file directly. ``AppTest`` resets that
  mode on every run, so a plain ``switch_page`` reproduces exactly that first request.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

import core  # noqa: F401  (before anything that may load TensorFlow in this process)
from core.config import TASKS
from core.registry import ModelRegistry

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app.py"
RUN_TIMEOUT_S = 120  # a page's first run may load the three networks on 2 busy cores
PAGE_DIRS = ("pages", "views")

# page name -> word its title must contain
PAGES = {"live": "Live", "statistics": "Statistics", "training": "Training"}


def _page_path(name: str) -> str:
    """The page file, relative to app.py (``pages/`` today; ``views/`` if it is renamed)."""
    for folder in PAGE_DIRS:
        if (REPO_ROOT / folder / f"{name}.py").is_file():
            return f"{folder}/{name}.py"
    raise AssertionError(f"no page file for {name!r} in {PAGE_DIRS}")


def _no_exception(at: AppTest) -> None:
    assert not at.exception, "\n\n".join(str(e.value) for e in at.exception)


def _titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def _assert_title(at: AppTest, name: str) -> None:
    word = PAGES[name].lower()
    assert any(word in t.lower() for t in _titles(at)), (name, _titles(at))


def _assert_sidebar_lists_active_models(at: AppTest) -> None:
    registry = ModelRegistry()
    captions = [c.value for c in at.sidebar.caption]
    for task in TASKS:
        active_id = registry.active(task).id
        assert any(f"**{task}**" in c and active_id in c for c in captions), (task, captions)


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    at.run()
    _no_exception(at)
    return at


@pytest.fixture
def after_first_run(monkeypatch) -> None:
    """Run scripts as a server does once ``st.navigation`` has run: always through app.py."""

    class NavigationPagesManager(PagesManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(app_test_module, "PagesManager", NavigationPagesManager)


def test_home_renders_with_about_text(app: AppTest) -> None:
    assert "FaceSense" in _titles(app)
    about = " ".join(m.value for m in app.markdown)
    for word in ("emotion", "age", "gender", "Live", "Statistics", "Training"):
        assert word in about


def test_sidebar_lists_the_active_model_of_every_task(app: AppTest) -> None:
    _assert_sidebar_lists_active_models(app)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_renders_through_the_app_shell(after_first_run, app: AppTest, name: str) -> None:
    app.switch_page(_page_path(name)).run()
    _no_exception(app)
    _assert_title(app, name)
    _assert_sidebar_lists_active_models(app)  # app.py ran first: shell + sidebar on every page


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_renders_when_opened_first(app: AppTest, name: str) -> None:
    """A deep link as the server's first request: the page must still render on its own."""
    app.switch_page(_page_path(name)).run()
    _no_exception(app)
    _assert_title(app, name)


def test_live_page_says_busy_when_every_stream_slot_is_taken(after_first_run, app: AppTest) -> None:
    """Tabs beyond FACESENSE_MAX_STREAMS get a clear message instead of a player that slows the others."""
    from core.live_session import STREAM_SLOTS

    others = [object() for _ in range(STREAM_SLOTS.limit)]
    try:
        for other in others:                               # other tabs stream right now
            assert STREAM_SLOTS.acquire(other)
        app.switch_page(_page_path("live")).run()
        _no_exception(app)
        assert any("FaceSense is busy" in w.value for w in app.warning), [w.value for w in app.warning]
        assert f"FACESENSE_MAX_STREAMS={STREAM_SLOTS.limit}" in " ".join(w.value for w in app.warning)
    finally:
        for other in others:
            STREAM_SLOTS.release(other)
    app.run()                                              # a slot is free again: the page goes on
    _no_exception(app)
    assert not any("FaceSense is busy" in w.value for w in app.warning)
    assert any("Face detector" == s.label for s in app.sidebar.selectbox)
