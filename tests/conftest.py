"""Shared fixtures: the ../shared data folder (skip when absent) and an isolated app home."""
from __future__ import annotations

import core  # noqa: F401  (first: pylibsrtp before TensorFlow, see core/_import_guard.py)

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Module- and session-scoped fixtures run before the per-test home below: give the whole
# test session a throwaway home too, so no test ever reads or writes the user's ~/.facesense.
os.environ["FACESENSE_HOME"] = tempfile.mkdtemp(prefix="facesense-tests-")
os.environ.pop("FACESENSE_DB_URL", None)
# Frozen graphs (core/graph_cache.py) depend only on the model files: one folder for the whole
# session, as a user's machine has, not one per test home (each would freeze every model again).
os.environ["FACESENSE_GRAPH_CACHE"] = tempfile.mkdtemp(prefix="facesense-tests-graphs-")
SHARED_DIR = Path(os.environ.get("FACESENSE_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, skipping the calling test cleanly when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (needs ../shared beside the clone)")
    return path


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture(autouse=True)
def facesense_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own FACESENSE_HOME (database, registry, jobs), never the user's."""
    home = tmp_path_factory.mktemp("facesense_home")
    monkeypatch.setenv("FACESENSE_HOME", str(home))
    monkeypatch.delenv("FACESENSE_DB_URL", raising=False)
    # Server paths typed in the pages must lie in a media folder (core/access.py): the tests' files
    # are in pytest's temp folder and ../shared, not the user's home.
    monkeypatch.setenv("FACESENSE_MEDIA_DIRS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(SHARED_DIR)]))
    for name in ("FACESENSE_PASSWORD_HASH", "FACESENSE_REQUIRE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return home
