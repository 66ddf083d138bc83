"""The shared session-store tests again, against a real PostgreSQL server started here.

Skips only where the server binaries are not installed (Debian: ``apt-get install postgresql``).
"""
import core  # noqa: F401  (first: safe native-library import order)

import pytest

import test_store
from pg import find_pg_bin, postgres_server

pytestmark = pytest.mark.skipif(find_pg_bin() is None, reason="PostgreSQL server binaries not installed")

globals().update({name: getattr(test_store, name) for name in test_store.SHARED_TESTS})


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as server:
        yield server


@pytest.fixture
def db_url(pg_server) -> str:
    """A fresh, empty database per test on the module's server."""
    return pg_server.create_database()


def test_postgres_url_without_driver_uses_psycopg(db_url):
    from core.store import SessionStore

    store = SessionStore(db_url.replace("postgresql+psycopg://", "postgresql://"))
    assert store.dialect == "postgresql" and store.engine.driver == "psycopg"
    assert store.list_sessions().empty
