"""Who may use a FaceSense server, and which server files it may open (no Streamlit in here).

* **Password.** Stored only as a salted scrypt hash, ``scrypt$n$r$p$salt$hash`` (salt and hash in
  URL-safe base64), made by ``python -m core.access hash``; :func:`verify` compares in constant time.
* **Where a password is needed.** :func:`password_required`: whenever the server listens on an
  address other than loopback (``localhost``, ``127.0.0.0/8``, ``::1``); an empty address or
  ``0.0.0.0`` / ``::`` listen on every interface, so they need one too. On loopback it is optional
  (a configured hash is still asked for). ``FACESENSE_REQUIRE_PASSWORD=1`` asks for it everywhere.
* **Failed attempts.** :class:`Throttle`: after the n-th failure further attempts are refused,
  without checking, for 1 s doubling to 30 s; the login form keeps one per browser session and one
  for the whole process (so opening new tabs does not help a guesser).
* **Server paths.** :func:`allowed_media_path`: a path typed in the browser is resolved (``~``,
  ``..``, symlinks) and accepted only inside a folder of :func:`media_dirs`
  (``FACESENSE_MEDIA_DIRS``, ``os.pathsep``-separated; default: the user's home when served on
  loopback, none otherwise).

    python -m core.access hash          # prompts twice, prints the lines for secrets.toml / the environment
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HASH_ENV = "FACESENSE_PASSWORD_HASH"
SECRET_KEY = "facesense_password_hash"
REQUIRE_ENV = "FACESENSE_REQUIRE_PASSWORD"
MEDIA_ENV = "FACESENSE_MEDIA_DIRS"

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1  # ~16 MB and ~50 ms per check on one core
SALT_BYTES, KEY_BYTES = 16, 32
MAX_PASSWORD_CHARS = 1024

FIRST_DELAY_S, MAX_DELAY_S = 1.0, 30.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * n * r * p + (1 << 20))


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt."""
    if not password:
        raise ValueError("the password cannot be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """The parts of an encoded hash; ValueError naming what is wrong (a mistyped secret)."""
    parts = (encoded or "").strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("the password hash is not in the form scrypt$n$r$p$salt$hash "
                         "(make one with: python -m core.access hash)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError("the password hash is damaged (make a new one with: python -m core.access hash)") from exc
    if not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16) or not salt or not key:
        raise ValueError("the password hash has unusable scrypt parameters (make a new one with: "
                         "python -m core.access hash)")
    return n, r, p, salt, key


def verify(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; the comparison takes the same time either way."""
    n, r, p, salt, key = parse_hash(encoded)
    if password is None or len(password) > MAX_PASSWORD_CHARS:
        password = ""
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


# -- where a password is needed ------------------------------------------------------------

def is_loopback(address: str | None) -> bool:
    """True for addresses only this machine can reach: ``localhost``, 127.0.0.0/8, ``::1``.

    An empty address (Streamlit then listens on every interface), ``0.0.0.0``, ``::``, a LAN address
    or any host name other than ``localhost`` are not loopback."""
    text = (address or "").strip().strip("[]").lower()
    if text in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def password_required(address: str | None) -> bool:
    """A password must be configured and given: not loopback, or ``FACESENSE_REQUIRE_PASSWORD=1``."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes") or not is_loopback(address)


def configured_hash(secrets_lookup: Callable[[str], object] | None = None) -> str | None:
    """The hash from ``secrets_lookup(SECRET_KEY)`` (Streamlit's secrets) or else ``FACESENSE_PASSWORD_HASH``."""
    value = None
    if secrets_lookup is not None:
        try:
            value = secrets_lookup(SECRET_KEY)
        except Exception:  # noqa: BLE001  (no secrets file, a broken one, or the key missing)
            value = None
    value = value or os.environ.get(HASH_ENV)
    return str(value).strip() if value and str(value).strip() else None


SETUP_HELP = (
    "Make a password hash on the server with `.venv/bin/python -m core.access hash`, then put the line it "
    f"prints into `.streamlit/secrets.toml` (`{SECRET_KEY} = \"scrypt$...\"`) or start the server with "
    f"`{HASH_ENV}=scrypt$...` in its environment, and restart FaceSense. See docs/deployment.md."
)


# -- failed attempts -----------------------------------------------------------------------

@dataclass
class Throttle:
    """Growing wait after failed attempts: after the n-th failure, ``first * 2**(n-1)`` s (at most
    ``maximum``) during which attempts are refused unchecked. ``free`` failures cost nothing (the
    process-wide throttle lets a few typos from different people pass). Thread-safe."""

    first_s: float = FIRST_DELAY_S
    maximum_s: float = MAX_DELAY_S
    free: int = 0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    locked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def wait_s(self) -> float:
        """Seconds until the next attempt is checked (0: now)."""
        with self._lock:
            return max(0.0, self.locked_until - self.clock())

    def delay_after(self, failures: int) -> float:
        counted = failures - self.free
        return 0.0 if counted <= 0 else min(self.maximum_s, self.first_s * 2 ** (counted - 1))

    def failed(self) -> float:
        """Record a failure; returns the wait it starts."""
        with self._lock:
            self.failures += 1
            delay = self.delay_after(self.failures)
            self.locked_until = max(self.locked_until, self.clock() + delay)
            return delay

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.locked_until = 0, 0.0


def attempt(password: str, encoded: str, throttles: list[Throttle]) -> tuple[bool, str]:
    """One login attempt against every throttle: ``(True, "")`` or ``(False, message for the user)``."""
    wait = max(t.wait_s() for t in throttles)
    if wait > 0:
        return False, f"Too many wrong passwords: wait {wait:.0f} s and try again."
    if verify(password, encoded):
        for throttle in throttles:
            throttle.succeeded()
        return True, ""
    delay = max(t.failed() for t in throttles)
    return False, f"Wrong password. The next attempt is possible in {delay:.0f} s."


# -- server paths --------------------------------------------------------------------------

def media_dirs(address: str | None = "localhost") -> list[Path]:
    """Folders whose files may be analysed by server path: ``FACESENSE_MEDIA_DIRS`` (``os.pathsep``-
    separated, resolved; set but empty means none), else the user's home on loopback, else none."""
    raw = os.environ.get(MEDIA_ENV)
    if raw is None:
        return [Path.home().resolve()] if is_loopback(address) else []
    return [Path(part).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip()]


def allowed_media_path(path: str | Path, address: str | None = "localhost",
                       dirs: list[Path] | None = None) -> Path:
    """``path`` resolved (``~``, ``..``, symlinks) if it lies inside a media folder; ValueError otherwise."""
    dirs = media_dirs(address) if dirs is None else [Path(d).expanduser().resolve() for d in dirs]
    if not dirs:
        raise ValueError("Analysing a file by its path on this server is switched off here (no media folder is "
                         f"configured). Upload the file instead, or have the server's administrator set {MEDIA_ENV}.")
    text = str(path).strip()
    given = Path(text).expanduser()
    if not text or not given.is_absolute():
        raise ValueError(f"Give the video's full path on this server (starting with / or ~), not {text!r}.")
    resolved = given.resolve(strict=False)
    if not any(resolved == d or resolved.is_relative_to(d) for d in dirs):
        shown = ", ".join(str(d) for d in dirs)
        raise ValueError(f"{text} is outside the media folders this server may read ({shown}); links and '..' "
                         f"count where they lead. Upload the file instead, or set {MEDIA_ENV}.")
    return resolved


# -- command line --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    import argparse
    import getpass
    import sys

    parser = argparse.ArgumentParser(prog="python -m core.access", description="FaceSense access control.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("hash", help="prompt for a password and print its salted hash for secrets.toml or the "
                                       "environment")
    make.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin "
                                                           "(no prompt, for scripts)")
    args = parser.parse_args(argv)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New FaceSense password: ")
        if getpass.getpass("Again: ") != password:
            print("The two passwords differ; nothing printed.", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("Use at least 8 characters.", file=sys.stderr)
        return 1
    encoded = hash_password(password)
    print("# .streamlit/secrets.toml (keep it private: chmod 600; it is not in git):", file=sys.stderr)
    print(f'{SECRET_KEY} = "{encoded}"')
    print("# or, instead, in the server's environment (quote it: it contains $):", file=sys.stderr)
    print(f"{HASH_ENV}='{encoded}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
