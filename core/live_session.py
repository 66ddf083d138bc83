"""One browser tab's live analysis: analyzer, stats channel and the START..STOP recording.

The Live page keeps one :class:`LiveSession` per tab. streamlit-webrtc's worker
thread calls :meth:`process` for every frame; the page thread only calls
:meth:`arm` (the stream is playing), :meth:`stop` (it stopped), :meth:`update_settings`
and reads :attr:`channel`. A recorded session opens on the first frame after
``arm`` and closes on ``stop``, so each START..STOP becomes exactly one session.
Recording problems (database down) are reported and never interrupt the video.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable, Mapping

import numpy as np

from core.analyzer import AnalyzerSettings, FrameAnalyzer
from core.live_channel import LiveChannel
from core.store import SessionStore, SessionWriter

log = logging.getLogger(__name__)


class LiveSession:
    """``models``: :class:`core.models.ActiveModels` (the page's cached one) or a fixed dict.

    The video thread only ever sees a plain dict of loaded models: loading new ones takes
    seconds, and streamlit-webrtc ends a stream whose frame callback takes more than 10 s,
    so a newly activated model is loaded on the page's thread (:meth:`refresh_models`)."""

    def __init__(self, models, settings: AnalyzerSettings | None = None,
                 store_factory: Callable[[], SessionStore] | None = None, source: str = "webcam") -> None:
        self._active = None if isinstance(models, Mapping) else models
        self._models_version = self._active.registry.version() if self._active is not None else None
        self.analyzer = FrameAnalyzer(models if self._active is None else self._active.get(), settings)
        self.analyzer.warm_up()  # on the page's thread, before the first frame arrives
        self.channel = LiveChannel()
        self.source = source
        self._store_factory = store_factory or SessionStore
        self._store: SessionStore | None = None
        self._settings = self.analyzer.settings
        self._lock = threading.Lock()
        self._armed = False
        self._writer: SessionWriter | None = None
        self.session_id: int | None = None       # the session being recorded, if any
        self.last_session_id: int | None = None  # the most recent session (recording or ended)
        self.recording_error: str | None = None

    # -- page thread ----------------------------------------------------------------
    def update_settings(self, settings: AnalyzerSettings) -> None:
        self._settings = settings
        self.analyzer.update_settings(settings)

    def refresh_models(self) -> bool:
        """Page thread: load the models activated since the last call, if any; True if swapped."""
        if self._active is None:
            return False
        version = self._active.registry.version()
        if version == self._models_version:
            return False
        self._active.reload()
        self._models_version = version
        self.analyzer.update_models(self._active.get())
        log.info("live models swapped: %s", self.analyzer.model_versions())
        return True

    def stop_soon(self) -> None:
        """:meth:`stop` on a short-lived thread: for callers that must not block (WebRTC's loop)."""
        threading.Thread(target=self.stop, name="facesense-live-stop", daemon=True).start()

    def arm(self) -> None:
        """The stream is playing: the next frame opens a recorded session (if none is open)."""
        with self._lock:
            self._armed = True

    def stop(self) -> int | None:
        """End the recorded session, if any (idempotent; any thread). Returns its id."""
        with self._lock:
            self._armed = False
            writer, session_id = self._writer, self.session_id
            self._writer, self.session_id = None, None
        if session_id is None:
            return None
        try:
            writer.close()
            self._get_store().end_session(session_id)
            log.info("live session %s ended (%d frames)", session_id, writer.frames_added)
        except Exception as exc:  # noqa: BLE001  (the database may be gone; the video must not care)
            self.recording_error = f"could not close session {session_id}: {exc}"
            log.error(self.recording_error)
        return session_id

    @property
    def recording(self) -> bool:
        return self.session_id is not None

    # -- video thread ---------------------------------------------------------------
    def _get_store(self) -> SessionStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def _open_recording(self) -> None:
        """Start a store session; called under the lock by the video thread."""
        try:
            store = self._get_store()
            settings = self._settings
            session_id = store.start_session(
                name=f"Live {datetime.now():%Y-%m-%d %H:%M:%S}", source=self.source,
                settings=settings.to_dict(), model_versions=self.analyzer.model_versions(),
            )
            self._writer = store.writer(session_id)
        except Exception as exc:  # noqa: BLE001
            self._armed = False  # do not retry every frame; the next START tries again
            self.recording_error = f"recording is off: {exc}"
            log.error("could not start a live session: %s", exc)
            return
        self.session_id = self.last_session_id = session_id
        self.recording_error = None
        self.analyzer.reset()  # IDs and frame numbers restart with each session
        self.channel.reset()

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Analyse, record and publish one frame; returns the annotated frame."""
        with self._lock:
            if self._armed and self._writer is None:
                self._open_recording()
            writer = self._writer
        annotated, result = self.analyzer.process(frame_bgr)
        if writer is not None:
            try:
                writer.add(result)
            except RuntimeError:  # closed by stop() while this frame was in flight
                pass
        self.channel.publish(result)
        return annotated


ICE_SCHEMES = ("stun:", "turn:", "turns:")


def ice_servers_from_text(text: str) -> list[dict]:
    """ICE servers for remote use, one per line: ``URL`` or ``URL USERNAME CREDENTIAL``.

    An empty text gives ``[]``: host candidates only, which connects on this machine and
    on a LAN with no STUN/TURN server reachable (FaceSense's offline default).
    """
    servers = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        url = parts[0]
        if not url.lower().startswith(ICE_SCHEMES):
            raise ValueError(f"line {number}: {url!r} is not a stun:, turn: or turns: URL")
        if len(parts) == 1:
            servers.append({"urls": [url]})
        elif len(parts) == 3:
            servers.append({"urls": [url], "username": parts[1], "credential": parts[2]})
        else:
            raise ValueError(f"line {number}: expected 'URL' or 'URL USERNAME CREDENTIAL'")
    return servers
