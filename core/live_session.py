"""One browser tab's live analysis: analyzer, stats channel and the START..STOP recording.

The Live page keeps one :class:`LiveSession` per tab. The video never waits for the models:
streamlit-webrtc's worker thread calls :meth:`LiveSession.submit` for every camera frame,
which posts the frame to a one-slot mailbox (an unread older frame is dropped), draws the
latest known analysis on it (:class:`core.overlay.MovingOverlay`: boxes moved by each face's
recent velocity) and returns at once. The tab's own analysis thread takes the newest frame
whenever it is free, runs :meth:`LiveSession.analyze` on it (analyzer, store, channel) and
publishes the result for the next video frames. Analysed frames are recorded with their own
capture time; frames that were never analysed are never recorded.

The machine is shared by every tab: at most ``FACESENSE_MAX_STREAMS`` streams (default 2)
are analysed at once (:data:`STREAM_SLOTS`; a tab beyond that is told it is busy), analyses
of all tabs take turns on ``FACESENSE_ANALYSIS_WORKERS`` threads (default 1, so the video
codecs keep a core), each tab analyses at most ``FACESENSE_ANALYSIS_FPS`` frames a
second (default 12), and the analysis threads run at ``FACESENSE_ANALYSIS_NICE`` (default 5,
Linux): when the CPU is short, the video and the browser come first and analysis takes
what is left.

The page thread only calls :meth:`arm` (the stream is playing), :meth:`stop` (it stopped),
:meth:`update_settings` and reads :attr:`channel`. A recorded session opens on the first
analysed frame after ``arm`` and closes on ``stop``, so each START..STOP becomes exactly one
session. Recording problems (database down) are reported and never interrupt the video.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator, Mapping

import numpy as np

from core.analyzer import AnalyzerSettings, FrameAnalyzer
from core.results import FrameResult
from core.live_channel import LiveChannel
from core.overlay import MovingOverlay, draw_faces
from core.store import SessionStore, SessionWriter

log = logging.getLogger(__name__)

DEFAULT_MAX_STREAMS = 2
DEFAULT_ANALYSIS_WORKERS = 1
DEFAULT_ANALYSIS_FPS = 12.0
DEFAULT_ANALYSIS_NICE = 5  # analysis threads yield the CPU to the video's decoder, encoder and the browser
LIVE_ATTRIBUTE_EVERY = 10  # analysed frames between a face's age/gender re-estimates on the Live page:
# about once a second per face at 12 analysed frames/s; measured CPU per analysed frame (3 faces,
# benchmarks.pipeline --pace 12): 39.7 ms with every 3, 22.1 ms with every 10
IDLE_EXIT_S = 30.0   # an analysis thread with no frame for this long ends (a closed tab); the next frame restarts it
STALE_STREAM_S = 10.0  # a stream slot whose holder sent no frame for this long is free again


def _env_number(name: str, default, cast=int, minimum=0):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    if value < minimum:
        log.warning("%s=%r is below %s; using %s", name, raw, minimum, default)
        return default
    return value


def max_streams_from_env() -> int:
    """``FACESENSE_MAX_STREAMS``: simultaneous live streams the server analyses (0 = no limit)."""
    return _env_number("FACESENSE_MAX_STREAMS", DEFAULT_MAX_STREAMS)


def limit_live_threads(cv_threads: int = 1) -> None:
    """Thread settings for a live server on a small machine: OpenCV's own pool (the face
    detector, resizes) off, so each analysis uses one core and the video decoder and encoder
    (aiortc's threads), the browser and the page keep the other. TensorFlow's pools are set
    separately (:func:`core.analyzer.limit_inference_threads`, before any model loads)."""
    import cv2

    cv2.setNumThreads(cv_threads)


def lower_thread_priority(nice: int) -> bool:
    """Give the calling thread (Linux: one thread, not the process) a higher nice value.
    Returns False where the platform cannot (the thread keeps its priority)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        return False
    return True


def _lower_worker_priorities(nice: int, done: set[int]) -> None:
    """The analyzer's own worker threads (full scans, age/gender re-estimates) are analysis too."""
    for thread in threading.enumerate():
        native = thread.native_id
        if thread.name.startswith(("facesense-scan", "facesense-attributes")) and native and native not in done:
            done.add(native)
            try:
                os.setpriority(os.PRIO_PROCESS, native, min(19, os.getpriority(os.PRIO_PROCESS, native) + nice))
            except (OSError, AttributeError):
                pass


_reniced_workers: set[int] = set()


def video_frame_to_bgr(frame) -> np.ndarray:
    """A decoded camera frame (``av.VideoFrame``) as BGR: yuv420p, what WebRTC's decoders give,
    through OpenCV (0.14 ms at 640x480 against PyAV's 0.34 ms), anything else through PyAV."""
    import cv2

    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def bgr_to_video_frame(image: np.ndarray):
    """BGR back to an ``av.VideoFrame`` in yuv420p, the encoder's format (0.2 ms at 640x480
    through OpenCV against 0.75 ms for PyAV's bgr24 frame plus the encoder's conversion)."""
    import av
    import cv2

    if image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="bgr24")


class StreamSlots:
    """At most ``limit`` streams analysed at once, process-wide (0 = no limit).

    A holder keeps its slot while frames arrive (:meth:`touch`); one that sent nothing for
    ``stale_s`` (a tab that vanished without a STOP) loses it to the next claimant."""

    def __init__(self, limit: int, stale_s: float = STALE_STREAM_S) -> None:
        self.limit = limit
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._holders: dict[int, float] = {}  # id(holder) -> monotonic time of its last frame

    def acquire(self, holder) -> bool:
        now = time.monotonic()
        with self._lock:
            key = id(holder)
            if key in self._holders:
                self._holders[key] = now
                return True
            for other, seen in list(self._holders.items()):
                if now - seen > self.stale_s:
                    log.warning("live stream slot of a silent stream reclaimed")
                    del self._holders[other]
            if self.limit and len(self._holders) >= self.limit:
                return False
            self._holders[key] = now
            return True

    def touch(self, holder) -> None:
        with self._lock:
            if id(holder) in self._holders:
                self._holders[id(holder)] = time.monotonic()

    def release(self, holder) -> None:
        with self._lock:
            self._holders.pop(id(holder), None)

    def holds(self, holder) -> bool:
        with self._lock:
            return id(holder) in self._holders

    def in_use(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for seen in self._holders.values() if now - seen <= self.stale_s)

    def free_for(self, holder) -> bool:
        """Could ``holder`` stream now (it holds a slot, or one is free)?"""
        return self.holds(holder) or not self.limit or self.in_use() < self.limit


class FairGate:
    """At most ``workers`` analyses at once across all tabs, first come first served (a
    thread that just finished queues behind the others instead of grabbing it again)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._busy = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._busy < self.workers and self._queue[0] is me)
            self._queue.popleft()
            self._busy += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()


STREAM_SLOTS = StreamSlots(max_streams_from_env())
ANALYSIS_NICE = _env_number("FACESENSE_ANALYSIS_NICE", DEFAULT_ANALYSIS_NICE)
ANALYSIS_GATE = FairGate(_env_number("FACESENSE_ANALYSIS_WORKERS", DEFAULT_ANALYSIS_WORKERS, minimum=1))


class FrameMailbox:
    """One slot holding the newest frame waiting for analysis and its capture time; posting
    over an unread frame drops that one (counted), so analysis never works on a backlog."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[np.ndarray, float] | None = None
        self._working = False
        self.posted = 0
        self.dropped = 0

    def post(self, frame: np.ndarray, captured_at: float) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = (frame, captured_at)
            self.posted += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> tuple[np.ndarray, float] | None:
        """The newest frame, waiting up to ``timeout`` s for one; None if none came. The taker
        calls :meth:`done` when it has finished with it."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None, timeout):
                return None
            item, self._item = self._item, None
            self._working = True
            return item

    def done(self) -> None:
        with self._cond:
            self._working = False
            self._cond.notify_all()

    @property
    def empty(self) -> bool:
        with self._cond:
            return self._item is None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no frame is waiting or being worked on; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None and not self._working, timeout)

    def clear(self) -> None:
        with self._cond:
            self._item = None


class LiveSession:
    """``models``: :class:`core.models.ActiveModels` (the page's cached one) or a fixed dict.

    The video thread only ever sees a plain dict of loaded models: loading new ones takes
    seconds, so a newly activated model is loaded on the page's thread (:meth:`refresh_models`).

    ``slots``/``gate``/``max_fps`` default to the process-wide limits above; tests pass their own.
    """

    def __init__(self, models, settings: AnalyzerSettings | None = None,
                 store_factory: Callable[[], SessionStore] | None = None, source: str = "webcam",
                 slots: StreamSlots | None = None, gate: FairGate | None = None,
                 max_fps: float | None = None) -> None:
        self._active = None if isinstance(models, Mapping) else models
        self._models_version = self._active.registry.version() if self._active is not None else None
        self.analyzer = FrameAnalyzer(models if self._active is None else self._active.get(), settings)
        self.analyzer.warm_up()  # on the page's thread, before the first frame arrives
        self.channel = LiveChannel()
        self.overlay = MovingOverlay()
        self.mailbox = FrameMailbox()
        self.source = source
        self.slots = slots or STREAM_SLOTS
        self.gate = gate or ANALYSIS_GATE
        self.max_fps = _env_number("FACESENSE_ANALYSIS_FPS", DEFAULT_ANALYSIS_FPS, float) \
            if max_fps is None else max_fps
        self._store_factory = store_factory or SessionStore
        self._store: SessionStore | None = None
        self._settings = self.analyzer.settings
        self._lock = threading.Lock()
        self._armed = False
        self._writer: SessionWriter | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0          # bumped by stop(): results of frames posted before it are not recorded
        self.busy = False             # the last frame was refused a stream slot (the machine is full)
        self.session_id: int | None = None       # the session being recorded, if any
        self.last_session_id: int | None = None  # the most recent session (recording or ended)
        self.recording_error: str | None = None
        self.participant: str | None = None      # stored with each session this tab records
        self.tags: dict[str, str] = {}

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

    def set_study(self, participant: str | None, tags: dict[str, str]) -> None:
        """Participant and tags for the sessions this tab records; a session recording now is updated too."""
        participant = (participant or "").strip() or None
        if (participant, tags) == (self.participant, self.tags):
            return
        self.participant, self.tags = participant, dict(tags)
        session_id = self.session_id
        if session_id is not None:
            self._get_store().update_session(session_id, participant=participant, tags=self.tags)

    def add_marker(self, label: str) -> int:
        """Store an event marker for the session recording now, at once (a kill right after keeps it).

        Raises ``RuntimeError`` when nothing is being recorded, ``ValueError`` for an empty label.
        """
        session_id = self.session_id
        if session_id is None:
            raise RuntimeError("not recording yet: a marker needs a running session (press START and wait for "
                               "the first frames)")
        return self._get_store().add_marker(session_id, label)

    def stop_soon(self) -> None:
        """:meth:`stop` on a short-lived thread: for callers that must not block (WebRTC's loop)."""
        threading.Thread(target=self.stop, name="facesense-live-stop", daemon=True).start()

    def arm(self) -> None:
        """The stream is playing: the next analysed frame opens a recorded session (if none is open)."""
        with self._lock:
            self._armed = True

    def stop(self) -> int | None:
        """End the stream: free its slot, drop the waiting frame and the overlay, and end the
        recorded session, if any (idempotent; any thread). Returns the session's id."""
        with self._lock:
            self._armed = False
            self._generation += 1
            writer, session_id = self._writer, self.session_id
            self._writer, self.session_id = None, None
        self.slots.release(self)
        self.busy = False
        self.mailbox.clear()
        self.overlay.clear()
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

    # -- video thread: never waits for the models -------------------------------------
    def submit(self, frame_bgr: np.ndarray, captured_at: float | None = None) -> np.ndarray | None:
        """Hand a camera frame to the analysis thread and return it with the latest overlay
        drawn (a copy), or None when there is nothing to draw (return the frame as it came).

        Takes a few milliseconds whatever the models cost. A stream refused a slot (the
        machine already serves its limit) sets :attr:`busy` and is passed through unanalysed."""
        captured_at = time.time() if captured_at is None else captured_at
        if not self.slots.acquire(self):
            self.busy = True
            self.channel.video_frame(None)
            return None
        self.busy = False
        self.mailbox.post(frame_bgr, captured_at)
        self._ensure_thread()
        found = self.overlay.faces_at(captured_at)
        if found is None:
            self.channel.video_frame(None)
            return None
        faces, held, analysed_at = found
        out = draw_faces(np.array(frame_bgr, copy=True), faces, held)
        self.channel.video_frame(captured_at - analysed_at)
        return out

    def process(self, frame_bgr: np.ndarray, captured_at: float | None = None) -> np.ndarray:
        """:meth:`submit`, always returning an image (the frame itself when nothing is drawn)."""
        out = self.submit(frame_bgr, captured_at)
        return frame_bgr if out is None else out

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="facesense-live-analysis", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """The tab's analysis thread: the newest frame, at most ``max_fps`` a second, one
        analysis at a time across tabs (:attr:`gate`)."""
        next_start = 0.0
        lower_thread_priority(ANALYSIS_NICE)
        analysed = 0
        while True:
            wait = next_start - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # paced: frames posted meanwhile replace each other in the mailbox
            item = self.mailbox.take(IDLE_EXIT_S)
            if item is None:
                with self._lock:
                    if self.mailbox.empty:  # nothing arrived since: end (the next frame starts a new thread)
                        self._thread = None
                        return
                continue
            started = time.monotonic()
            try:
                with self._lock:
                    generation = self._generation
                with self.gate.turn():
                    newer = self.mailbox.take(0)  # a newer frame came while waiting for the turn: that one
                    if newer is not None:
                        item = newer
                        self.mailbox.dropped += 1
                    with self._lock:
                        stale = generation != self._generation  # STOP came meanwhile: not this session's
                    started = time.monotonic()
                    if not stale:
                        self.analyze(*item)
                        analysed += 1
                        if analysed in (1, 30):  # the analyzer's workers exist once it has run a little
                            _lower_worker_priorities(ANALYSIS_NICE, _reniced_workers)
            except Exception:  # noqa: BLE001  (the analyzer reports frame errors itself; keep the thread)
                log.exception("live analysis failed")
            finally:
                self.mailbox.done()
            if self.max_fps and self.max_fps > 0:
                next_start = started + 1.0 / self.max_fps

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Tests and tools: wait until every posted frame has been analysed or dropped."""
        return self.mailbox.wait_idle(timeout)

    # -- analysis thread ----------------------------------------------------------------
    def _get_store(self) -> SessionStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def _open_recording(self) -> None:
        """Start a store session; called under the lock by the analysis thread."""
        try:
            store = self._get_store()
            settings = self._settings
            session_id = store.start_session(
                name=f"Live {datetime.now():%Y-%m-%d %H:%M:%S}", source=self.source,
                settings=settings.to_dict(), model_versions=self.analyzer.model_versions(),
                participant=self.participant, tags=self.tags,
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
        self.overlay.clear()

    def analyze(self, frame_bgr: np.ndarray, captured_at: float | None = None) -> FrameResult:
        """Analyse one frame, record it (with ``captured_at``, its capture time) and publish it
        to the channel and the overlay. Runs on the analysis thread; tests call it directly."""
        captured_at = time.time() if captured_at is None else captured_at
        with self._lock:
            if self._armed and self._writer is None:
                self._open_recording()
            writer = self._writer
        result = self.analyzer.analyze(frame_bgr, captured_at)
        if writer is not None:
            try:
                writer.add(result)
            except RuntimeError:  # closed by stop() while this frame was in flight
                pass
        self.overlay.update(result)
        self.channel.publish(result, time.time() - captured_at)
        return result


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
