"""Analyse a video file into a new session, with the same analyzer as the webcam.

Frames are decoded with PyAV (FFmpeg). Whether a file is a video is decided by
opening it, not by its name: anything FFmpeg decodes (mp4, avi, mov, webm, mkv,
wmv, mpg, m4v, 3gp, flv, ts, ...) is accepted. Every message names the file the
user gave (an upload's original name, never its temporary copy). Each frame's timestamp is the session start
plus the frame's position in the file, so a video session charts exactly like a
live one. The file is checked before a session exists; a file that turns out to
be corrupt while decoding, or a cancelled run, deletes its session again, so a
half-analysed video never shows up in the statistics.

CLI::

    python -m core.video_analysis ../shared/video/multi_face_640x480.avi
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from core.detection import DETECTORS, detector_notice
from core.disk import file_hash
from core.markers import MarkerFileError, read_markers_csv
from core.store import SessionStore
from core.tags import TagError, parse_tags

log = logging.getLogger(__name__)

# Common video file types, for help texts and the tests. Not a filter: probe() opens the file.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".wmv", ".mpg", ".m4v", ".3gp", ".flv", ".ts")
STILL_IMAGE_FORMATS = ("image2", "apng", "gif", "webp")  # FFmpeg opens pictures too; they are no video
Progress = Callable[[float], None]
LOAD_SHARE = 0.1  # the progress bar's share for loading the models, before the first frame
MOSTLY_EMPTY_SHARE = 0.5  # more frames without any face than this: warn that the detector may miss faces
COMPLETE_SHARE = 0.9  # fewer decodable frames than this share of the header's count: the file is damaged


class VideoError(ValueError):
    """The file cannot be analysed: missing, unsupported or corrupt (the message says which)."""


class VideoCancelled(Exception):
    """Raised inside the decode loop when the cancel event is set."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frames: int  # from the container header; 0 when it does not say
    duration_s: float  # 0 when unknown
    width: int
    height: int
    codec: str
    name: str = ""  # the file as the user knows it (an upload's original name); default: path.name

    @property
    def label(self) -> str:
        return self.name or self.path.name

    def as_dict(self) -> dict:
        return {"file": self.label, "fps": self.fps, "frames": self.frames, "duration_s": self.duration_s,
                "width": self.width, "height": self.height, "codec": self.codec}


@dataclass
class VideoAnalysis:
    """What a run did: ``session_id`` is None when it was cancelled (its session deleted)."""

    session_id: int | None
    info: VideoInfo
    frames: int  # frames decoded and analysed
    failed_frames: int  # frames the analyzer skipped with an error
    faces: int  # face observations stored
    video_s: float  # video time covered
    wall_s: float  # analysis time
    cancelled: bool = False
    cpu_s: float = 0.0  # CPU time this process used meanwhile (all threads): the cost on an idle machine
    frames_without_faces: int = 0  # analysed frames in which no face was found

    @property
    def mostly_empty(self) -> bool:
        """Most frames had no face: the video may show none, or the detector missed them."""
        return self.frames > 0 and self.frames_without_faces > MOSTLY_EMPTY_SHARE * self.frames

    @property
    def speedup(self) -> float:
        """Video seconds per wall-clock second (>1 is faster than real time)."""
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0


def probe(path: str | Path, name: str | None = None) -> VideoInfo:
    """Open the file and read its video stream's header; :class:`VideoError` if that fails.

    ``name`` is how messages call the file (an upload's original name); default: its file name.
    """
    path = Path(path).expanduser()
    shown = name or path.name
    if not path.is_file():
        raise VideoError(f"video file not found: {name or path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{shown} contains no video stream")
            if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
                raise VideoError(f"{shown} is a still image, not a video")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            if not stream.width or not stream.height:
                raise VideoError(f"{shown}: the video stream has no picture size (damaged header?)")
            return VideoInfo(path, fps, int(stream.frames or 0), max(0.0, duration), stream.width,
                             stream.height, stream.codec_context.name, name or "")
    except av.FFmpegError as exc:
        raise VideoError(f"{shown}: not a video FFmpeg can read (is the file complete and a real video?)") \
            from exc


def iter_frames(info: VideoInfo, threads: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """(position in seconds from the first frame, BGR frame) for every decodable frame;
    :class:`VideoError` on corruption."""
    index = 0
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's own threads decode ahead of the analyzer
            stream.thread_count = threads  # 0: FFmpeg's choice (all cores); a batch worker's share otherwise
            start = None  # MPEG program/transport streams (.mpg, .ts) start their clock at 0.5-1.4 s, not 0
            for index, frame in enumerate(container.decode(stream)):
                position = frame.time if frame.time is not None else index / info.fps
                start = position if start is None else start
                yield float(position - start), frame.to_ndarray(format="bgr24")
    except av.FFmpegError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".")
        raise VideoError(f"{info.label} is damaged: decoding stopped after {index} frames ({reason})") from exc


OFFLINE_ATTRIBUTE_EVERY = 15  # a file's faces: age and gender re-estimated every 15 frames (twice a second at 30 fps)


def offline_settings(settings):
    """The analyzer settings for a file: periodic full scans in line, not on a background thread,
    and age and gender re-estimated every :data:`OFFLINE_ATTRIBUTE_EVERY` frames.

    Live video must never wait for a scan; a file may, and gets tracking that depends only
    on its frames (same IDs on every run and machine), not on how busy the CPU was. A person's
    age and gender do not change within seconds: two estimates a second, smoothed, cost a
    fifth of ten and leave the networks' time to emotion, which changes from frame to frame.
    """
    return replace(settings, attribute_every=max(settings.attribute_every, OFFLINE_ATTRIBUTE_EVERY),
                   attributes_in_background=False,
                   tracking=replace(settings.tracking, background_scan=False))


def analyze_video(path: str | Path, analyzer, store: SessionStore | None = None, *, name: str | None = None,
                  source_label: str | None = None, extra_settings: dict | None = None,
                  progress: Progress | None = None, cancel: threading.Event | None = None,
                  participant: str | None = None, tags: dict[str, str] | None = None,
                  markers: list[tuple[float, str]] | None = None, batch: str | None = None,
                  source_hash: str | None = None, threads: int | None = None) -> VideoAnalysis:
    """Run every frame of ``path`` through ``analyzer`` (a :class:`core.analyzer.FrameAnalyzer`,
    switched to :func:`offline_settings`) into a new "video" session and return what happened.

    ``progress(fraction)`` is called about every 1% of the file; setting ``cancel``
    stops at the next frame and deletes the session. ``source_label`` replaces the
    stored path (an upload's original name instead of its temp file). ``participant``,
    ``tags``, ``batch`` and ``markers`` (``(seconds into the video, label)``) are stored with
    the session; ``source_hash`` is the file's content hash (computed here when not given).

    Frames are staged (decoded, detected, tracked, cropped) :data:`STAGE_FRAMES` at a time and
    the networks run once per task over each group's faces. With ``threads`` >= 2 (default: the
    machine's cores) staging runs a group ahead on its own thread, beside the networks; a batch
    worker that shares the cores with other workers passes 1.
    """
    info = probe(path, Path(source_label).name if source_label else None)
    store = store or SessionStore()
    analyzer.update_settings(offline_settings(analyzer.settings))
    started_at = datetime.now(timezone.utc)
    origin = started_at.timestamp()
    shown = Path(source_label or info.path)  # an upload is named after the user's file, not its temp copy
    video = info.as_dict()
    settings = {"analyzer": offline_settings(analyzer.settings).to_dict(), "video": video, **(extra_settings or {})}
    name = name or shown.stem
    session_id = store.start_session(name, "video", settings, analyzer.model_versions(),
                                     started_at=started_at, source_path=source_label or str(info.path),
                                     participant=participant, tags=tags, batch=batch,
                                     source_hash=source_hash or file_hash(info.path))
    for seconds, label in markers or ():
        store.add_marker(session_id, label, origin + seconds)
    analyzer.reset()
    frames = failed = faces = empty = 0
    last_position = 0.0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    report_every = max(1, info.frames // 100) if info.frames else 30
    ahead = (threads or os.cpu_count() or 1) >= 2
    try:
        with store.writer(session_id) as writer:
            chunks = _staged_chunks(info, analyzer, origin, cancel, threads or 0)
            for staged, positions in (read_ahead(chunks) if ahead else chunks):
                if cancel is not None and cancel.is_set():
                    raise VideoCancelled()
                for result, position in zip(analyzer.finish(staged), positions):
                    writer.add(result)
                    frames += 1
                    failed += result.error is not None
                    faces += len(result.faces)
                    empty += not result.faces
                    last_position = max(last_position, position)
                    if progress is not None and (frames == 1 or frames % report_every == 0):
                        progress(_fraction(info, frames, position))
        if frames == 0:
            raise VideoError(f"{info.label}: no frame could be decoded")
        if info.frames and frames < COMPLETE_SHARE * info.frames:
            raise VideoError(f"{info.label} is damaged or truncated: its header announces {info.frames} frames, "
                             f"only {frames} could be decoded")
    except VideoCancelled:
        store.delete_session(session_id)
        log.info("analysis of %s cancelled after %d frames; session %s deleted", info.label, frames, session_id)
        return VideoAnalysis(None, info, frames, failed, faces, last_position, time.perf_counter() - wall_start,
                             cancelled=True, frames_without_faces=empty)
    except BaseException:
        store.delete_session(session_id)
        raise
    video_s = last_position + 1.0 / info.fps
    store.end_session(session_id, ended_at=started_at + timedelta(seconds=video_s))
    if progress is not None:
        progress(1.0)
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    log.info("analysed %s: %d frames in %.1f s (%.2fx real time), session %s", info.label, frames, wall_s,
             video_s / wall_s if wall_s else 0.0, session_id)
    return VideoAnalysis(session_id, info, frames, failed, faces, video_s, wall_s, cpu_s=cpu_s,
                         frames_without_faces=empty)


STAGE_FRAMES = 32  # frames whose faces go through the networks together (~100 faces on the 3-face clip)
READ_AHEAD = 2  # staged groups waiting for the networks, at most


def _staged_chunks(info: VideoInfo, analyzer, origin: float, cancel: threading.Event | None, threads: int = 0):
    """Groups of (staged frames, their positions in seconds), :data:`STAGE_FRAMES` each."""
    staged, positions = [], []
    for position, image in iter_frames(info, threads):
        if cancel is not None and cancel.is_set():
            raise VideoCancelled()
        staged.append(analyzer.stage(image, origin + position))
        positions.append(position)
        if len(staged) == STAGE_FRAMES:
            yield staged, positions
            staged, positions = [], []
    if staged:
        yield staged, positions


_DONE = object()


def read_ahead(items: Iterator, depth: int = READ_AHEAD) -> Iterator:
    """``items`` produced on a thread of its own, at most ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer at that point; a consumer that
    stops early (an error, a cancel) stops the producer before its next item.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            put((_DONE, exc))
            return
        put((_DONE, None))

    thread = threading.Thread(target=produce, name="facesense-stage", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _fraction(info: VideoInfo, frames: int, position: float) -> float:
    if info.duration_s > 0:
        return min(1.0, position / info.duration_s)
    return min(1.0, frames / info.frames) if info.frames else 0.0


@dataclass
class VideoJob:
    """One analysis running on a background thread, so a page can poll it and cancel it.

    Its phases are ``starting`` (saving, checking), ``loading`` (the models), ``analysing``
    (decoding and analysing frames) and ``done``; :attr:`fraction` covers all of them, so a
    progress bar moves from the click on. ``started`` is when the user asked for it
    (``time.monotonic()``), so :attr:`waited_s` is the time the user waited.
    """

    label: str
    progress: float = 0.0  # share of the frames analysed
    result: VideoAnalysis | None = None
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    loaded: float | None = None  # when the models were ready
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def waited_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def load_s(self) -> float | None:
        return None if self.loaded is None else self.loaded - self.started

    @property
    def fraction(self) -> float:
        """The whole job's progress in [0, 1]: model loading creeps towards LOAD_SHARE, frames fill the rest."""
        if self.phase == "done":
            return 1.0
        if self.loaded is None:
            return LOAD_SHARE * (1.0 - 0.5 ** (self.waited_s / 5.0))  # moves from the first second
        return LOAD_SHARE + (1.0 - LOAD_SHARE) * min(1.0, self.progress)

    def status_text(self) -> str:
        if self.loaded is None:
            return f"{self.label}: loading the models and opening the video ({self.waited_s:.0f} s)…"
        return f"Analysing {self.label}: {self.progress:.0%} of the video ({self.waited_s:.0f} s)"

    def outcome(self) -> tuple[str, str]:
        """(level, text) for a finished job: level is ``error``, ``info``, ``warning`` or ``success``."""
        if self.error:
            return "error", self.error
        r = self.result
        if r is None:
            return "error", f"{self.label}: the analysis stopped without a result"
        if r.cancelled:
            return "info", f"Analysis of {self.label} cancelled; nothing was saved."
        loaded = f"{self.load_s:.1f} s loading the models, " if self.load_s is not None else ""
        text = (f"{self.label}: session #{r.session_id} with {r.frames:,} frames and {r.faces:,} face "
                f"observations; {r.frames_without_faces:,} of {r.frames:,} frames had no face. "
                f"{r.video_s:.1f} s of video took {self.waited_s:.1f} s from your click "
                f"({loaded}{r.wall_s:.1f} s analysing, {r.speedup:.1f}× real time).")
        if r.mostly_empty:
            return "warning", (f"{text}  \nNo face was found in most frames ({r.frames_without_faces:,} of "
                               f"{r.frames:,}). If the video shows people, the detector missed them (small, "
                               "distant, back-lit or turned faces): open **Detector settings** above, raise the "
                               "sensitivity, lower the minimum face size or scan at full resolution, and "
                               "analyse again.")
        return "success", text


def start_video_job(path: str | Path, make_analyzer: Callable[[], object], *, name: str | None = None,
                    source_label: str | None = None, cleanup: Callable[[], None] | None = None,
                    store: SessionStore | None = None, started: float | None = None,
                    **session_info) -> VideoJob:
    """Start :func:`analyze_video` on a thread; ``make_analyzer`` runs there too (model loading is slow).

    ``started`` (``time.monotonic()``) is when the user asked, if that was before this call;
    ``session_info`` (``participant``, ``tags``, ``markers``) goes to :func:`analyze_video`.
    """
    job = VideoJob(label=Path(source_label).name if source_label else Path(path).name)
    if started is not None:
        job.started = started

    def run() -> None:
        try:
            job.phase = "loading"
            analyzer = make_analyzer()
            job.loaded, job.phase = time.monotonic(), "analysing"
            job.result = analyze_video(path, analyzer, store or SessionStore(), name=name, source_label=source_label,
                                       progress=lambda f: setattr(job, "progress", f), cancel=job.cancel_event,
                                       **session_info)
        except VideoError as exc:
            job.error = str(exc)
        except Exception as exc:  # surfaced on the page, never lost in a thread
            log.exception("video analysis of %s failed", job.label)
            job.error = f"{job.label}: the analysis failed ({type(exc).__name__}: {exc})"
        finally:
            if cleanup is not None:
                cleanup()
            job.finished, job.phase = time.monotonic(), "done"

    job.thread = threading.Thread(target=run, name=f"facesense-video-{job.label}", daemon=True)
    job.thread.start()
    return job


def default_analyzer(detector: str = "yunet", detector_settings=None):
    """The app's analyzer with the registry's active models (loads TensorFlow).

    ``detector_settings`` (a :class:`core.detection.DetectorSettings`) overrides ``detector``.
    """
    from core.analyzer import AnalyzerSettings, FrameAnalyzer
    from core.detection import DetectorSettings
    from core.models import ActiveModels

    settings = detector_settings or DetectorSettings(kind=detector)
    analyzer = FrameAnalyzer(ActiveModels(), AnalyzerSettings(detector=settings))
    analyzer.warm_up()  # first calls now, not inside the timed analysis
    return analyzer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.video_analysis",
                                     description="Analyse a video file into a new FaceSense session.")
    parser.add_argument("path", help="video file: anything FFmpeg decodes (" + ", ".join(VIDEO_SUFFIXES) + ", ...)")
    parser.add_argument("--name", help="session name (default: the file name)")
    parser.add_argument("--db", help="SQLAlchemy URL (default: FACESENSE_DB_URL or the SQLite file in FACESENSE_HOME)")
    parser.add_argument("--detector", default="yunet", choices=DETECTORS,
                        help="face detector: yunet (CNN, default) or haar (OpenCV's cascade)")
    parser.add_argument("--participant", help="participant label stored with the session (e.g. P07)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="a tag stored with the session, e.g. --tag condition=A (repeat for several)")
    parser.add_argument("--markers", metavar="CSV", help="event markers file with the columns time_s,label")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        info = probe(args.path)
        tags = parse_tags(args.tag)
        markers = read_markers_csv(args.markers) if args.markers else []
    except (VideoError, TagError, MarkerFileError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"{info.path.name}: {info.width}x{info.height} {info.codec}, {info.fps:.2f} fps, "
          f"{info.frames or '?'} frames, {info.duration_s:.1f} s")
    t0 = time.perf_counter()
    analyzer = default_analyzer(args.detector)
    from core.models import keep_loaded_for_good

    keep_loaded_for_good()  # a short exit for this run
    notice = detector_notice()
    if notice:
        print(f"warning: {notice}")
    print(f"models loaded in {time.perf_counter() - t0:.1f} s: {analyzer.model_versions()}")
    store = SessionStore(args.db)
    try:
        run = analyze_video(info.path, analyzer, store, name=args.name, participant=args.participant, tags=tags,
                            markers=markers)
    except VideoError as exc:
        print(f"error: {exc}")
        return 2
    ids = store.face_ids(run.session_id)
    print(f"session {run.session_id}: {run.frames} frames ({run.failed_frames} failed), {run.faces} face "
          f"observations, face IDs {ids}; {run.frames_without_faces} frames without a face")
    if run.mostly_empty:
        print(f"warning: no face found in {run.frames_without_faces} of {run.frames} frames; if the video shows "
              "people, the detector missed them (try --detector haar, or the Statistics page's detector settings)")
    print(f"analysed {run.video_s:.1f} s of video in {run.wall_s:.1f} s: {run.frames / run.wall_s:.1f} fps, "
          f"speed-up {run.speedup:.2f}x real time")
    print(f"CPU time {run.cpu_s:.1f} s ({run.cpu_s / run.video_s:.2f} CPU-s per video second, all threads; "
          f"1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
