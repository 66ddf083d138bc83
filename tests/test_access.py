"""Access control (core/access.py, pages/components/login.py): password hash, growing wait after
failures, which addresses need a password, the login gate in the app, and the media-folder check
for paths typed in the browser."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import access

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = str(REPO_ROOT / "app.py")
STATISTICS = str(REPO_ROOT / "pages" / "statistics.py")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def encoded() -> str:
    return access.hash_password(PASSWORD)


# -- hash and verify -----------------------------------------------------------------------

def test_hash_is_salted_scrypt_and_verifies(encoded):
    parts = encoded.split("$")
    assert parts[0] == "scrypt" and [int(x) for x in parts[1:4]] == [access.SCRYPT_N, access.SCRYPT_R, access.SCRYPT_P]
    assert PASSWORD not in encoded
    assert access.hash_password(PASSWORD) != encoded  # a fresh salt every time
    assert access.verify(PASSWORD, encoded)
    assert not access.verify(PASSWORD + " ", encoded)
    assert not access.verify("", encoded)
    assert not access.verify("x" * 10_000, encoded)


def test_a_damaged_hash_is_named_not_accepted():
    for bad in ("", "plaintext", "scrypt$16384$8$1$salt", "scrypt$3$8$1$c2FsdA$a2V5", "bcrypt$1$2$3$4$5"):
        with pytest.raises(ValueError, match="python -m core.access hash"):
            access.verify("anything", bad)


def test_verify_uses_a_constant_time_comparison(monkeypatch, encoded):
    calls = []
    real = access.hmac.compare_digest
    monkeypatch.setattr(access.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    access.verify("wrong", encoded)
    assert calls == [1]


def test_cli_prints_the_secrets_and_environment_lines():
    out = subprocess.run([sys.executable, "-m", "core.access", "hash", "--stdin"], input="s3cret-passw0rd\n",
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=True)
    secret_line, env_line = out.stdout.strip().splitlines()
    assert secret_line.startswith('facesense_password_hash = "scrypt$') and secret_line.endswith('"')
    assert env_line.startswith("FACESENSE_PASSWORD_HASH='scrypt$")
    assert access.verify("s3cret-passw0rd", secret_line.split('"')[1])
    assert "s3cret" not in out.stdout + out.stderr
    short = subprocess.run([sys.executable, "-m", "core.access", "hash", "--stdin"], input="short\n",
                           capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert short.returncode == 1 and not short.stdout


# -- failed attempts -----------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_doubles_from_one_second_to_thirty(encoded):
    clock = Clock()
    throttle = access.Throttle(clock=clock)
    waits = []
    for _ in range(8):
        ok, message = access.attempt("wrong", encoded, [throttle])
        assert not ok and "Wrong password" in message
        waits.append(throttle.wait_s())
        clock.now += throttle.wait_s()
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


def test_attempts_during_the_wait_are_refused_even_with_the_right_password(encoded):
    clock = Clock()
    throttle = access.Throttle(clock=clock)
    access.attempt("wrong", encoded, [throttle])
    access.attempt("wrong", encoded, [throttle])  # refused unchecked: does not lengthen the wait
    assert throttle.failures == 1
    ok, message = access.attempt(PASSWORD, encoded, [throttle])
    assert not ok and "wait 1 s" in message
    clock.now += 1.01
    assert access.attempt(PASSWORD, encoded, [throttle]) == (True, "")
    assert throttle.failures == 0 and throttle.wait_s() == 0


def test_the_server_wide_throttle_counts_failures_from_every_tab(encoded):
    clock = Clock()
    server = access.Throttle(free=5, clock=clock)
    for _ in range(5):  # five tabs, one typo each: no wait yet
        assert access.attempt("wrong", encoded, [access.Throttle(clock=clock), server])[0] is False
        clock.now += 1.01
    assert server.wait_s() == 0
    access.attempt("wrong", encoded, [access.Throttle(clock=clock), server])  # a sixth, new tab
    assert server.wait_s() == 1
    assert "wait" in access.attempt(PASSWORD, encoded, [access.Throttle(clock=clock), server])[1]


# -- which addresses need a password -------------------------------------------------------

@pytest.mark.parametrize("address, loopback", [
    ("localhost", True), ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("", False), (None, False), ("192.168.1.20", False),
    ("fd00::2", False), ("facesense.lab", False), ("localhost.evil.example", False),
])
def test_loopback_addresses(address, loopback):
    assert access.is_loopback(address) is loopback
    assert access.password_required(address) is (not loopback)


def test_require_password_env_forces_it_on_localhost(monkeypatch):
    monkeypatch.setenv(access.REQUIRE_ENV, "1")
    assert access.password_required("localhost")


def test_configured_hash_prefers_secrets_and_survives_a_missing_secrets_file(monkeypatch):
    def missing(key):
        raise FileNotFoundError("no secrets.toml")

    assert access.configured_hash(missing) is None
    monkeypatch.setenv(access.HASH_ENV, "scrypt$env")
    assert access.configured_hash(missing) == "scrypt$env"
    assert access.configured_hash(lambda key: "scrypt$secret") == "scrypt$secret"


# -- the login gate in the app -------------------------------------------------------------

@pytest.fixture
def fresh_server_throttle():
    from pages.components import login

    login._server_throttle.clear()
    yield
    login._server_throttle.clear()


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.title, *at.markdown, *at.caption, *at.error, *at.info])


def test_localhost_without_a_password_opens_the_app():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["FaceSense"]
    assert "Active models" in [h.value for h in at.sidebar.subheader]
    assert not at.text_input  # no password field


def test_without_a_configured_password_a_lan_server_shows_nothing_and_says_how(monkeypatch, fresh_server_throttle):
    from seed_sessions import seed_session
    from core.store import SessionStore

    seed_session(SessionStore(), 30, name="participant-17")
    monkeypatch.setenv(access.REQUIRE_ENV, "1")  # as on a LAN address: AppTest cannot bind one
    for script in (APP, STATISTICS):
        at = AppTest.from_file(script, default_timeout=120).run()
        assert not at.exception
        assert "has no password" in at.error[0].value and "python -m core.access hash" in at.error[0].value
        assert "participant-17" not in _texts(at)
        assert not at.sidebar.subheader and not at.button and not at.text_input and not at.tabs


def _log_in(at: AppTest, password: str) -> None:
    at.text_input(key="facesense-password").input(password)
    at.button[0].click()  # typed and submitted in one run, as a form does
    at.run()


def test_wrong_passwords_wait_and_the_right_one_opens_the_app(monkeypatch, encoded, fresh_server_throttle):
    monkeypatch.setenv(access.REQUIRE_ENV, "1")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets[access.SECRET_KEY] = encoded
    at.run()
    assert not at.sidebar.subheader and at.text_input(key="facesense-password")
    _log_in(at, "guess")
    assert "Wrong password" in at.error[0].value and "1 s" in at.error[0].value
    _log_in(at, PASSWORD)  # within the wait: refused without checking
    assert "Too many wrong passwords" in at.error[0].value
    assert not at.sidebar.subheader
    time.sleep(1.1)
    _log_in(at, PASSWORD)
    assert not at.exception and not at.error
    assert "Active models" in [h.value for h in at.sidebar.subheader]
    at.switch_page("pages/statistics.py").run()  # the login lasts for this browser session
    assert not at.exception and [t.value for t in at.title] == ["Statistics"]


def test_the_hash_can_come_from_the_environment(monkeypatch, encoded, fresh_server_throttle):
    monkeypatch.setenv(access.HASH_ENV, encoded)
    at = AppTest.from_file(APP, default_timeout=120).run()  # localhost, but a hash is set: asked for
    assert at.text_input(key="facesense-password") and not at.sidebar.subheader


# -- server paths --------------------------------------------------------------------------

@pytest.fixture
def media(tmp_path) -> Path:
    folder = tmp_path / "media"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "clip.mp4").write_bytes(b"video")
    (tmp_path / "outside.mp4").write_bytes(b"secret")
    return folder


def test_paths_inside_the_media_folder_are_accepted_resolved(media):
    dirs = [media]
    clip = (media / "sub" / "clip.mp4").resolve()
    assert access.allowed_media_path(str(media / "sub" / "clip.mp4"), dirs=dirs) == clip
    assert access.allowed_media_path(f"{media}/sub/../sub/clip.mp4", dirs=dirs) == clip
    (media / "inner-link.mp4").symlink_to(media / "sub" / "clip.mp4")
    assert access.allowed_media_path(media / "inner-link.mp4", dirs=dirs) == clip


@pytest.mark.parametrize("escape", ["dotdot", "symlink", "symlinked_dir", "absolute", "etc", "relative"])
def test_paths_out_of_the_media_folder_are_refused(media, tmp_path, escape):
    if escape == "dotdot":
        path = f"{media}/sub/../../outside.mp4"
    elif escape == "symlink":
        (media / "link.mp4").symlink_to(tmp_path / "outside.mp4")
        path = str(media / "link.mp4")
    elif escape == "symlinked_dir":
        (media / "escape").symlink_to(tmp_path)
        path = str(media / "escape" / "outside.mp4")
    elif escape == "absolute":
        path = str(tmp_path / "outside.mp4")
    elif escape == "etc":
        path = "/etc/passwd"
    else:
        path = "sub/clip.mp4"
    with pytest.raises(ValueError) as err:
        access.allowed_media_path(path, dirs=[media])
    assert ("outside the media folders" in str(err.value)) or ("full path" in str(err.value))


def test_a_media_folder_prefix_is_not_a_parent(tmp_path):
    (tmp_path / "media-private").mkdir()
    (tmp_path / "media").mkdir()
    with pytest.raises(ValueError, match="outside"):
        access.allowed_media_path(tmp_path / "media-private" / "x.mp4", dirs=[tmp_path / "media"])


def test_default_media_folders_home_on_localhost_none_on_a_lan(monkeypatch):
    monkeypatch.delenv(access.MEDIA_ENV, raising=False)
    assert access.media_dirs("localhost") == [Path.home().resolve()]
    assert access.media_dirs("0.0.0.0") == []
    with pytest.raises(ValueError, match="switched off"):
        access.allowed_media_path(Path.home() / "clip.mp4", address="0.0.0.0")
    monkeypatch.setenv(access.MEDIA_ENV, os.pathsep.join(["/srv/videos", "", "~/clips"]))
    assert access.media_dirs("0.0.0.0") == [Path("/srv/videos").resolve(), (Path.home() / "clips").resolve()]
    monkeypatch.setenv(access.MEDIA_ENV, "")
    assert access.media_dirs("localhost") == []


def test_statistics_page_refuses_a_path_outside_the_media_folders(monkeypatch, media, tmp_path):
    monkeypatch.setenv(access.MEDIA_ENV, str(media))
    at = AppTest.from_file(STATISTICS, default_timeout=120).run()
    for path in (f"{media}/../outside.mp4", "/etc/passwd"):
        at.text_input(key="video_path").set_value(path).run()
        at.button(key="analyse_video").click().run()
        assert not at.exception
        assert len(at.error) == 1 and "outside the media folders" in at.error[0].value, [e.value for e in at.error]
    at.text_input(key="video_path").set_value(str(media / "sub" / "clip.mp4")).run()
    at.button(key="analyse_video").click().run()  # inside: checked as a video (and refused as one)
    assert "not a video FFmpeg can read" in at.error[0].value


def test_training_page_refuses_a_data_path_outside_the_media_folders(monkeypatch, media):
    monkeypatch.setenv(access.MEDIA_ENV, str(media))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    at.text_input(key="data_path").input("/etc/passwd").run()
    assert not at.exception
    assert any("outside the media folders" in e.value for e in at.error), [e.value for e in at.error]
