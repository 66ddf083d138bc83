"""WebRTC media sockets that follow the server's address.

streamlit-webrtc's media goes through aiortc, whose ICE agent (aioice) gathers a host
candidate, and opens a UDP socket, on every address of every interface it finds
(``aioice.ice.get_host_addresses``), whatever address the web server listens on. FaceSense
serves ``localhost`` only by default (``.streamlit/config.toml``): the media sockets should
not listen on the LAN either. :func:`follow_server_address` replaces aioice's host address
discovery (a documented monkeypatch; aioice has no option for it) with one driven by
Streamlit's ``server.address``:

- ``localhost`` / ``127.0.0.1`` / ``::1``: loopback only (``127.0.0.1``; ``::1`` if IPv4 is off);
- unset, ``0.0.0.0`` or ``::`` (all interfaces): aioice's own choice, unchanged;
- any other address or host name: that address (what it resolves to) only, e.g. the LAN
  address of a LAN deployment.

The browser on the same machine reaches a loopback candidate; Chromium and Firefox pair it
with their own host candidates (checked by ``tests/test_webrtc_network.py`` and the
real-browser tests).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Callable

log = logging.getLogger(__name__)

ALL_INTERFACES = {"", "0.0.0.0", "::"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except socket.gaierror as exc:
        log.warning("server.address %r does not resolve (%s): ICE falls back to every interface", host, exc)
        return []
    found: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in found:
            found.append(sockaddr[0])
    return found


def ice_host_addresses(server_address: str | None, available: Callable[[], list[str]],
                       use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    """The addresses ICE should gather host candidates on for a server bound to ``server_address``.

    ``available``: aioice's own discovery (every non-loopback interface address), called
    only when the server listens everywhere or its address cannot be resolved."""
    address = (server_address or "").strip().strip("[]")
    if address in ALL_INTERFACES:
        return available()
    if address.lower() in LOOPBACK_NAMES or _is_loopback(address):
        return ["127.0.0.1"] if use_ipv4 else (["::1"] if use_ipv6 else [])
    try:
        literal = [str(ipaddress.ip_address(address.split("%")[0]))]
    except ValueError:
        literal = _resolve(address)
    if not literal:
        return available()
    if any(_is_loopback(a) for a in literal):
        return ["127.0.0.1"] if use_ipv4 else (["::1"] if use_ipv6 else [])
    wanted = [a for a in literal if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
    return wanted


def follow_server_address(server_address: str | None) -> None:
    """Make aioice gather on the addresses :func:`ice_host_addresses` picks for this server
    address, from the next peer connection on (idempotent; the latest address wins)."""
    import aioice.ice as ice

    original = getattr(ice, "_facesense_original_get_host_addresses", None)
    if original is None:
        original = ice._facesense_original_get_host_addresses = ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ice_host_addresses(server_address, lambda: original(use_ipv4=use_ipv4, use_ipv6=use_ipv6),
                                  use_ipv4, use_ipv6)

    get_host_addresses.server_address = server_address  # type: ignore[attr-defined]
    ice.get_host_addresses = get_host_addresses
