"""The password gate: :func:`require_login` runs before any page shows data or accepts an action.

Streamlit's documented pattern for an app without an identity provider: the secret lives in
``st.secrets`` (``.streamlit/secrets.toml``) or the environment, the login state in
``st.session_state`` (one browser tab's session: a reload asks again). ``st.login`` is not used
because it needs an OIDC provider and FaceSense works offline. The checks are in
:mod:`core.access`: salted scrypt hash, constant-time comparison, a growing wait after failures
per tab and for the whole server.

``app.py`` calls it after ``st.navigation`` (so a deep link still lands on its page after the
login) and before the sidebar or any page runs; each page calls it too, because a fresh
server's very first request may run a page file without ``app.py`` (docs/foundation.md).
"""
from __future__ import annotations

import streamlit as st

from core import access

LOGGED_IN = "facesense-logged-in"
THROTTLE = "facesense-login-throttle"


@st.cache_resource(show_spinner=False)
def _server_throttle() -> access.Throttle:
    """Process-wide: failures from every tab; the first 5 cost nothing, then 1 s doubling to 30 s."""
    return access.Throttle(free=5)


def _secret(key: str):
    return st.secrets[key]


def _address() -> str:
    return str(st.get_option("server.address") or "")


def require_login() -> None:
    """Return when this tab may see the app; otherwise draw the login (or the set-up help) and stop."""
    if st.session_state.get(LOGGED_IN):
        return
    address = _address()
    encoded = access.configured_hash(_secret)
    if encoded is None:
        if not access.password_required(address):
            return  # localhost without a password: the machine's own user only
        st.title("FaceSense")
        st.error("This FaceSense server is reachable from other computers but has no password, so it shows no "
                 "data. " + access.SETUP_HELP, icon=":material/lock:")
        st.stop()
    try:
        access.parse_hash(encoded)
    except ValueError as exc:
        st.title("FaceSense")
        st.error(f"FaceSense's password is misconfigured: {exc}. " + access.SETUP_HELP, icon=":material/lock:")
        st.stop()
    _login_form(encoded)
    if not st.session_state.get(LOGGED_IN):
        st.stop()


def _login_form(encoded: str) -> None:
    st.title("FaceSense")
    st.caption("This FaceSense server asks for its password. The login lasts while this browser tab stays open.")
    throttle = st.session_state.setdefault(THROTTLE, access.Throttle())
    with st.form("facesense-login", clear_on_submit=True):
        password = st.text_input("Password", type="password", key="facesense-password",
                                 max_chars=access.MAX_PASSWORD_CHARS)
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    ok, message = access.attempt(password or "", encoded, [throttle, _server_throttle()])
    if ok:
        st.session_state[LOGGED_IN] = True
        st.rerun()
    st.error(message, icon=":material/lock:")
