"""The address this FaceSense server really serves, and help texts that use it.

Streamlit's own texts assume the defaults: help that names ``http://localhost:8501`` is wrong
when the server runs on another port, and the browser's "Connection error" dialog tells the
user to run ``streamlit run yourscript.py``. :func:`with_real_address` fixes the first,
:func:`fix_disconnect_help` (called by ``app.py`` on every page) the second.
"""
from __future__ import annotations

import json

import streamlit as st

DEFAULT_ADDRESS = "http://localhost:8501"
START_COMMAND = "bash scripts/start.sh"
STREAMLIT_RESTART = "streamlit run yourscript.py"
STREAMLIT_QUESTION = ("Is Streamlit still running? If you accidentally stopped Streamlit, "
                      "just restart it in your terminal:")
FACESENSE_QUESTION = "Is FaceSense still running? If it stopped, start it again in a terminal, in the FaceSense folder:"


def _port() -> int:
    return int(st.get_option("server.port") or 8501)


def local_address() -> str:
    """``http://localhost:<port>[/<base path>]``: where this server is open on its own computer
    (a secure origin, so the browser lets the Live page use the camera)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"http://localhost:{_port()}" + (f"/{base}" if base else "")


def with_real_address(text: str) -> str:
    """``text`` with ``http://localhost:8501`` replaced by :func:`local_address`."""
    return text.replace(DEFAULT_ADDRESS, local_address())


def start_command() -> str:
    """How this server is started again: ``bash scripts/start.sh`` plus the port when it is not 8501."""
    return START_COMMAND + ("" if _port() == 8501 else f" --server.port {_port()}")


def disconnect_script() -> str:
    """JavaScript that rewrites Streamlit's disconnect dialog to name FaceSense and its start command."""
    replacements = {STREAMLIT_RESTART: start_command(), STREAMLIT_QUESTION: FACESENSE_QUESTION}
    return """<script>
(() => {
  const replacements = %s;
  const fix = () => {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const [from, to] of Object.entries(replacements)) {
        if (node.nodeValue.includes(from)) node.nodeValue = node.nodeValue.replace(from, to);
      }
    }
  };
  if (window.__facesenseDisconnectHelp) window.__facesenseDisconnectHelp.disconnect();
  window.__facesenseDisconnectHelp = new MutationObserver(fix);
  window.__facesenseDisconnectHelp.observe(document.body, {childList: true, subtree: true, characterData: true});
})();
</script>""" % json.dumps(replacements)


def fix_disconnect_help() -> None:
    """Install :func:`disconnect_script` in the page (once per script run; it replaces itself)."""
    st.html(disconnect_script(), unsafe_allow_javascript=True, width="content")
