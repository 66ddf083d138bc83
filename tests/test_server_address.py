"""Issue 21.8: help texts name the address the server really serves and how FaceSense starts."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import signal

import pytest
import streamlit as st

from pages.components import server_address as sa


@pytest.fixture
def options(monkeypatch):
    values = {"server.port": 8501, "server.baseUrlPath": ""}
    monkeypatch.setattr(st, "get_option", lambda name: values[name])
    return values


def test_address_and_start_command_follow_the_server_options(options):
    assert sa.local_address() == "http://localhost:8501" and sa.start_command() == "bash scripts/start.sh"
    options.update({"server.port": 8502, "server.baseUrlPath": "/facesense/"})
    assert sa.local_address() == "http://localhost:8502/facesense"
    assert sa.start_command() == "bash scripts/start.sh --server.port 8502"
    help_text = "Use http://localhost:8501 on this computer, or HTTPS from another one."
    assert sa.with_real_address(help_text) == "Use http://localhost:8502/facesense on this computer, or HTTPS " \
                                              "from another one."
    script = sa.disconnect_script()
    assert "bash scripts/start.sh --server.port 8502" in script and "yourscript.py" in script  # (what it replaces)


def test_disconnect_dialog_names_facesense_and_its_start_command(tmp_path):
    """In a real browser: stop the server and read Streamlit's connection-lost dialog."""
    from tests.browser import facesense_server, open_page, require_browser, chromium, wait_until

    require_browser()
    server = {}
    with chromium(fake_device=False) as browser:
        with facesense_server(tmp_path, on_start=lambda proc: server.update(proc=proc)) as url:
            page = open_page(browser, url)
            port = url.rsplit(":", 1)[1]
            server["proc"].send_signal(signal.SIGKILL)
            server["proc"].wait(30)
            text = wait_until(lambda: (t := page.inner_text("body")) and "FaceSense still running" in t and t,
                              90, "the connection-lost dialog")
    assert f"bash scripts/start.sh --server.port {port}" in text
    assert "yourscript.py" not in text and "Streamlit still running" not in text
