"""The frame pipeline shared by live video and video files.

detect -> track -> preprocess -> one batched call per model -> smooth -> (draw).

Detection is tracking-assisted: while faces are followed, each known face is searched
for in a small window around its last position (a fraction of the cost of a full scan),
and the whole frame is scanned for newcomers every ``full_scan_every`` frames on a
worker thread, so that the scan never adds to a frame's latency.
All faces of a frame go through each network in one batch; age and gender, which do not
change while a person stays in view, are re-estimated for each followed face every
``attribute_every`` frames (see :class:`AttributeSchedule`), on a worker thread beside the
frame path like the scan, and applied at the first frame after they finish; a newcomer is
estimated in line, so every face has an age and gender from its first frame. A frame that fails to
process is reported with ``error`` set and skipped; it never stops the stream.

Files need no answer per frame, only every answer: :meth:`FrameAnalyzer.stage` does a frame's
detection, tracking and crops, and :meth:`FrameAnalyzer.finish` runs the networks once over the
crops of many staged frames (a batch of 50 faces costs the emotion networks a quarter per face
of a batch of 3) and then smooths frame by frame, in order, exactly as :meth:`~FrameAnalyzer.analyze`
does with in-line attributes. The two halves keep separate state, so a file can stage the next
frames on one thread while the networks finish the last ones on another.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

import numpy as np

from core.config import EMOTIONS, TASKS
from core.detection import Detection, DetectorSettings, FaceDetector, effective_settings, make_detector
from core.overlay import draw_faces
from core.pose import head_pose
from core.results import FaceResult, FrameResult  # noqa: F401  (part of this module's API)
from core.preprocess import Box
from core.smoothing import FaceSmoother
from core.tasks import STABLE_TASKS  # noqa: F401  (part of this module's API: age, gender)
from core.tracking import FaceTracker, Track, TrackingSettings, iou, merge_overlapping

log = logging.getLogger(__name__)


@dataclass
class AnalyzerSettings:
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    smoothing_window: int = 5            # frames (estimates, for age and gender); 0 = off
    tasks: tuple[str, ...] = TASKS       # which models run
    attribute_every: int = 3             # frames between re-estimates of a followed face's age and gender
    attributes_in_background: bool = True  # re-estimates on a worker thread (newcomers are always in line)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)

    def to_dict(self) -> dict:
        """Plain JSON-able form (recorded with each session): the detector that really ran."""
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        data["detector"] = effective_settings(self.detector).to_dict()
        return data




class AttributeSchedule:
    """Which followed faces get their age and gender re-estimated on this frame.

    Emotion changes from frame to frame; age and gender do not. Running their networks on
    every face of every frame spent most of a three-face frame's model time on answers that
    were already known, so each face is re-estimated every ``every`` frames instead (10 times
    a second at 30 fps with the default 3), and keeps its smoothed estimate in between.
    A face seen for the first time is estimated at once. Faces that fall due together are
    spread over the following frames (at most ceil(faces / every) per frame, longest wait
    first), so no frame pays for all of them.
    """

    def __init__(self, every: int = 3) -> None:
        self.every = max(1, int(every))
        self._last: dict[int, int] = {}  # face id -> frame index of its last estimate

    def due(self, frame_index: int, face_ids: list[int]) -> list[int]:
        """Positions in ``face_ids`` to estimate now (call :meth:`estimated` once they are)."""
        new = [i for i, f in enumerate(face_ids) if f not in self._last]
        waiting = [(frame_index - self._last[f], i) for i, f in enumerate(face_ids)
                   if f in self._last and frame_index - self._last[f] >= self.every]
        quota = len(waiting) if self.every == 1 else -(-len(face_ids) // self.every)
        return sorted(new + [i for _, i in sorted(waiting, key=lambda w: -w[0])[:quota]])

    def __contains__(self, face_id: int) -> bool:
        """Whether the face has been estimated before (else it is a newcomer)."""
        return face_id in self._last

    def estimated(self, frame_index: int, face_ids) -> None:
        """Record an estimate; a frame that failed records none, so its faces stay due."""
        for face_id in face_ids:
            self._last[face_id] = frame_index

    def forget(self, face_ids) -> None:
        for face_id in face_ids:
            self._last.pop(face_id, None)

    def reset(self) -> None:
        """Estimate every face afresh (a new session, other models or settings)."""
        self._last.clear()


def limit_inference_threads(threads: int = 1) -> bool:
    """Run TensorFlow's ops on ``threads`` threads; call before any model loads.

    The face networks are small (a few ms per batch): splitting each op across threads
    gains little, and on a busy 2-core machine (the browser's and aiortc's video codecs,
    other work) the threads wait for each other. Measured on this project's 2-core VM
    under load: per-call p95 11.7 ms on TensorFlow's default pool, 3.4 ms on one thread.
    Returns False (and changes nothing) when TensorFlow's runtime is already running.
    """
    from core.tf_import import import_tensorflow

    try:
        tf = import_tensorflow()
    except ImportError:  # another Keras backend: nothing to configure
        return False
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        log.info("TensorFlow already initialised; keeping its thread settings")
        return False
    return True


_workers: dict[str, ThreadPoolExecutor] = {}
_workers_lock = threading.Lock()


def _worker(name: str) -> ThreadPoolExecutor:
    """One worker thread per kind of background job ("scan": full-frame scans; "attributes":
    age and gender re-estimates), shared by all analyzers in the process."""
    with _workers_lock:
        if name not in _workers:
            _workers[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"facesense-{name}")
        return _workers[name]


def _timed_scan(detector: FaceDetector, frame: np.ndarray) -> tuple[list[Detection], float]:
    start = time.perf_counter()
    boxes = list(detector.detect(frame))
    return boxes, (time.perf_counter() - start) * 1000


def _crops(models: Mapping, tasks: list[str], frame: np.ndarray, visible: list[Track], due: list[int],
           timings: dict[str, float]) -> dict:
    """FaceSpec -> (positions in ``visible``, those faces cut for it).

    A spec some per-frame task (emotion) uses is cut for every visible face; one only age and
    gender use, for the faces due (``due``) alone: most frames need none of them. Tasks whose
    models share a spec share one batch.
    """
    t0 = time.perf_counter()
    boxes = [t.detection for t in visible]
    landmarks = [t.found.landmarks if t.found is not None else None for t in visible]
    every_face = {models[t].spec for t in tasks if t not in STABLE_TASKS}
    batches: dict = {}
    for task in tasks:
        spec = models[task].spec
        if spec not in batches:
            rows = list(range(len(visible))) if spec in every_face else list(due)
            batches[spec] = rows, models[task].prepare(frame, [boxes[i] for i in rows], [landmarks[i] for i in rows])
    timings["preprocess"] = (time.perf_counter() - t0) * 1000
    return batches


def _pick(crops: tuple[list[int], np.ndarray], rows: list[int]) -> np.ndarray:
    """The crops of the faces at positions ``rows`` (all of them cut) from a ``_crops`` entry."""
    cut, batch = crops
    if rows == cut:
        return batch
    at = {position: k for k, position in enumerate(cut)}
    return batch[[at[r] for r in rows]]


def _timed_attributes(models: dict, batches: dict, face_ids: list[int], frame_index: int):
    """Age and gender of some faces, off the frame path: (ids, frame, {task: values}, ms)."""
    start = time.perf_counter()
    values = {task: model.predict(batches[task]) for task, model in models.items()}
    return face_ids, frame_index, values, (time.perf_counter() - start) * 1000


def _as_model_dict(models) -> Mapping:
    """A plain task -> TaskModel mapping, or ActiveModels' current (hot-reloaded) set."""
    return models if isinstance(models, Mapping) else models.get()


class FrameAnalyzer:
    """Turns BGR frames into :class:`FrameResult` s; one instance per stream (it keeps tracks).

    ``analyze``/``process`` run on one thread at a time (the video thread);
    ``update_settings`` and ``reset`` may be called from any thread and take effect at
    the next frame.
    """

    def __init__(self, models, settings: AnalyzerSettings | None = None,
                 detector: FaceDetector | None = None) -> None:
        self._models = models  # core.models.ActiveModels (hot reload) or dict[str, TaskModel]
        self.settings = settings or AnalyzerSettings()
        self._own_detector = detector is None
        self.detector = detector or make_detector(self.settings.detector)
        self.tracker = FaceTracker(self.settings.tracking)
        self.smoother = FaceSmoother(self.settings.smoothing_window)
        self._lock = threading.Lock()
        self._pending_settings: AnalyzerSettings | None = None
        self._pending_models = None
        self._pending_reset = False
        self._last: dict[int, FaceResult] = {}
        self.schedule = AttributeSchedule(self.settings.attribute_every)
        self._attributes: dict[int, dict[str, float]] = {}  # face id -> latest smoothed age/gender
        self._attribute_job: Future | None = None  # background re-estimates in flight
        self._frame_index = 0
        self._since_full_scan = 0
        self._scan: Future | None = None            # background full scan in flight
        self._scan_detector: FaceDetector | None = None  # its own instance (Haar's cascade is not thread-safe)
        self.failed_frames = 0

    # -- control (any thread) -------------------------------------------------------
    def update_settings(self, settings: AnalyzerSettings) -> None:
        with self._lock:
            self._pending_settings = settings

    def update_models(self, models) -> None:
        """Swap the models (ActiveModels or dict) from any thread; used from the next frame."""
        with self._lock:
            self._pending_models = models

    def reset(self) -> None:
        """Forget all faces and restart IDs and frame numbers (a new session)."""
        with self._lock:
            self._pending_reset = True

    def _apply_pending(self) -> None:
        with self._lock:
            settings, self._pending_settings = self._pending_settings, None
            do_reset, self._pending_reset = self._pending_reset, False
            models, self._pending_models = self._pending_models, None
        if models is not None:
            self._models = models
            self.schedule.reset()  # new networks: every face's age and gender from them, now
            self._attribute_job = None  # the old networks' answers are dropped
        if settings is not None:
            if self._own_detector and settings.detector != self.settings.detector:
                self.detector = make_detector(settings.detector)
                self._scan_detector = None
            if settings.tracking != self.settings.tracking:
                self.tracker.settings = settings.tracking
            self.smoother.set_window(settings.smoothing_window)
            if (settings.attribute_every, settings.tasks) != (self.settings.attribute_every, self.settings.tasks):
                self.schedule = AttributeSchedule(settings.attribute_every)
                self._attribute_job = None
            self.settings = settings
        if do_reset:
            self.tracker.reset()
            self.smoother.reset()
            self.schedule.reset()
            self._attribute_job = None
            self._attributes.clear()
            self._last.clear()
            self._frame_index = 0
            self._since_full_scan = 0
            self._scan = None  # a scan of the old session's frames is dropped
            self.failed_frames = 0

    def model_versions(self) -> dict[str, str]:
        """Registry id of each model that runs (recorded with sessions)."""
        models = _as_model_dict(self._models)
        return {t: models[t].entry_id for t in self.settings.tasks if t in models}

    def warm_up(self) -> None:
        """Run the detector and each model once on blank input, so that one-off costs (graph
        tracing: seconds on a busy CPU) are paid now and not by the first live frame;
        streamlit-webrtc gives up on a stream whose frame callback takes more than 10 s."""
        self._apply_pending()
        self.detector.detect(np.zeros((240, 320, 3), np.uint8))
        models = _as_model_dict(self._models)
        for task in self.settings.tasks:
            if task in models:
                models[task].predict(np.zeros((1, *models[task].spec.input_shape), np.uint8))

    # -- the pipeline (video thread) ------------------------------------------------
    def _detect(self, frame: np.ndarray, timings: dict[str, float]) -> list[Detection]:
        tracks = self.tracker.tracks
        near = getattr(self.detector, "detect_near", None)
        tracking = self.settings.tracking
        every = max(1, tracking.full_scan_every)
        if near is None or not tracks or every == 1:
            self._since_full_scan = 0  # nothing to follow (or no near search): scan it all now
            self._scan = None  # a background scan still running is older than this one
            return merge_overlapping(self.detector.detect(frame))
        self._since_full_scan += 1
        due = self._since_full_scan >= every
        found: list[Detection] = []
        if tracking.background_scan and self._own_detector:
            if self._scan is not None and self._scan.done():
                found, timings["scan"] = self._scan.result()  # an earlier frame's scan: new faces
                self._scan = None
            if due and self._scan is None:
                if self._scan_detector is None:
                    self._scan_detector = make_detector(self.settings.detector)
                self._scan = _worker("scan").submit(_timed_scan, self._scan_detector, frame.copy())
                self._since_full_scan = 0
            # Known faces first: their boxes are current, the scan's may be a few frames old.
            boxes = [box for track in tracks for box in near(frame, track.search_box)] + found
        else:
            if due:
                found = list(self.detector.detect(frame))
                self._since_full_scan = 0
            # Follow known faces the scan (if any) did not find: searched at their own scale in
            # full resolution, small faces are kept that a downscaled scan misses.
            boxes = found + [box for track in tracks if not any(_overlaps(track.search_box, f.box) for f in found)
                             for box in near(frame, track.search_box)]
        return merge_overlapping(boxes)

    def _predict(self, frame: np.ndarray, visible: list[Track], index: int,
                 timings: dict[str, float]) -> dict[str, dict]:
        """Each task's outputs by position in ``visible``: every face for emotion; for age and
        gender, the newcomers (in line) and the faces whose background re-estimate arrived."""
        models = _as_model_dict(self._models)
        tasks = [t for t in self.settings.tasks if t in models]
        stable = [t for t in tasks if t in STABLE_TASKS]
        outputs: dict[str, dict] = {t: {} for t in tasks}
        if not visible or not tasks:
            return outputs
        ids = [t.id for t in visible]
        if stable:
            self._collect_attributes(ids, outputs, timings)
        due = self.schedule.due(index, ids) if stable else []
        batches = _crops(models, tasks, frame, visible, due, timings)
        later = [i for i in due if ids[i] in self.schedule] if self.settings.attributes_in_background else []
        inline = [i for i in due if i not in later]
        for task in tasks:
            rows = inline if task in STABLE_TASKS else list(range(len(ids)))
            t0 = time.perf_counter()
            values = models[task].predict(_pick(batches[models[task].spec], rows)) if rows else []
            timings[task] = (time.perf_counter() - t0) * 1000 if rows else 0.0
            outputs[task].update(zip(rows, values))
        self.schedule.estimated(index, [ids[i] for i in inline])
        if later and self._attribute_job is None:  # one job at a time; faces left out stay due
            self._attribute_job = _worker("attributes").submit(
                _timed_attributes, {t: models[t] for t in stable},
                {t: _pick(batches[models[t].spec], later) for t in stable}, [ids[i] for i in later], index)
        return outputs

    def _collect_attributes(self, ids: list[int], outputs: dict[str, dict], timings: dict[str, float]) -> None:
        """Put a finished background re-estimate into ``outputs`` (by position in ``ids``).

        A model error raised there fails this frame, as it would in line; its faces stay due.
        """
        job = self._attribute_job
        if job is None or not job.done():
            return
        self._attribute_job = None
        face_ids, frame_index, values, timings["attributes"] = job.result()
        position = {face_id: i for i, face_id in enumerate(ids)}
        here = [f for f in face_ids if f in position]  # faces out of view stay due for their return
        for task, task_values in values.items():
            outputs[task].update((position[f], v) for f, v in zip(face_ids, task_values) if f in position)
        self.schedule.estimated(frame_index, here)

    def _face_result(self, track: Track, i: int, outputs: dict[str, dict], frame_shape) -> FaceResult:
        sm = self.smoother
        probs = emotion = None
        if "emotion" in outputs:
            probs = np.asarray(sm.smooth(track.id, "emotion", outputs["emotion"][i]), dtype=np.float32)
            emotion = EMOTIONS[int(np.argmax(probs))]
        known = self._attributes.setdefault(track.id, {})
        for task in STABLE_TASKS:
            if task in outputs and i in outputs[task]:
                known[task] = float(sm.smooth(track.id, task, float(outputs[task][i])))
        age = known.get("age") if "age" in outputs else None
        gender = float(np.clip(known["gender"], 0.0, 1.0)) if "gender" in outputs and "gender" in known else None
        found = track.found
        pose = head_pose(found.landmarks, frame_shape) if found is not None and found.landmarks is not None else None
        return FaceResult(track.id, track.int_box, probs, emotion, age, gender,
                          found.confidence if found is not None else None, pose)

    def _next_index(self) -> int:
        """Apply what other threads asked for, then number the frame."""
        self._apply_pending()
        self._frame_index += 1
        return self._frame_index - 1

    def _detect_and_track(self, frame_bgr: np.ndarray, timings: dict[str, float], start: float):
        """Find the frame's faces and follow them: the tracker's update (the first half of a frame)."""
        _check_frame(frame_bgr)
        boxes = self._detect(frame_bgr, timings)
        timings["detect"] = (time.perf_counter() - start) * 1000
        t0 = time.perf_counter()
        update = self.tracker.update(boxes)
        self.schedule.forget(update.ended)
        timings["track"] = (time.perf_counter() - t0) * 1000
        return update

    def _forget(self, ended: list[int]) -> None:
        """Drop what the smoothing and the overlay kept of faces whose tracks ended."""
        self.smoother.forget(ended)
        for face_id in ended:
            self._last.pop(face_id, None)
            self._attributes.pop(face_id, None)

    def _skipped(self, index: int, exc: Exception) -> str:
        """Count and log a frame that failed (the first few and then every 100th); its error text."""
        self.failed_frames += 1
        if self.failed_frames <= 5 or self.failed_frames % 100 == 0:
            log.warning("frame %d skipped (%d so far): %s", index, self.failed_frames, exc, exc_info=True)
        return f"{type(exc).__name__}: {exc}"

    def analyze(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> FrameResult:
        index = self._next_index()
        timestamp = time.time() if timestamp is None else float(timestamp)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        try:
            update = self._detect_and_track(frame_bgr, timings, start)
            self._forget(update.ended)
            outputs = self._predict(frame_bgr, update.visible, index, timings)
            faces = [self._face_result(track, i, outputs, frame_bgr.shape) for i, track in enumerate(update.visible)]
            self._last.update({f.face_id: f for f in faces})
            held = [replace(self._last[t.id], box=t.int_box) for t in update.held if t.id in self._last]
        except Exception as exc:  # noqa: BLE001  (logged by _skipped): one bad frame must never end a stream
            error = self._skipped(index, exc)
            timings["total"] = (time.perf_counter() - start) * 1000
            return FrameResult(index, timestamp, [], timings, error=error)
        timings["total"] = (time.perf_counter() - start) * 1000
        return FrameResult(index, timestamp, faces, timings, held=held)

    # -- files: stage many frames, then finish them with one network call per task ------
    def stage(self, frame_bgr: np.ndarray, timestamp: float) -> StagedFrame:
        """Detect, track and crop one frame (the first half of :meth:`analyze`, for files).

        Age and gender are always estimated in line here (due faces, per the schedule).
        Call :meth:`finish` on staged frames in the order they were staged.
        """
        index = self._next_index()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        models = _as_model_dict(self._models)
        try:
            update = self._detect_and_track(frame_bgr, timings, start)
            visible = [_Seen(t.id, t.int_box, t.found) for t in update.visible]
            held = [(t.id, t.int_box) for t in update.held]
            tasks = [t for t in self.settings.tasks if t in models]
            ids = [t.id for t in visible]
            due = self.schedule.due(index, ids) if any(t in STABLE_TASKS for t in tasks) else []
            crops = _crops(models, tasks, frame_bgr, update.visible, due, timings) if visible else {}
            self.schedule.estimated(index, [ids[i] for i in due])
        except Exception as exc:  # noqa: BLE001  (logged by _skipped): one bad frame must never end a file
            error = self._skipped(index, exc)
            timings["total"] = (time.perf_counter() - start) * 1000
            return StagedFrame(index, float(timestamp), (), models, [], [], [], {}, [], timings, error=error)
        timings["total"] = (time.perf_counter() - start) * 1000
        return StagedFrame(index, float(timestamp), frame_bgr.shape, models, visible, held, update.ended, crops,
                           due, timings)

    def finish(self, staged: list[StagedFrame]) -> list[FrameResult]:
        """Run each network once over the crops of all ``staged`` frames, then smooth and
        report each frame in order (the second half of :meth:`analyze`)."""
        outputs = [self._frame_outputs(frame) for frame in staged]
        ok = [i for i, f in enumerate(staged) if f.error is None and f.visible]
        by_models: dict[tuple, list[int]] = {}
        for i in ok:  # a model swap between frames: each set runs on its own frames
            key = tuple(sorted((task, id(model)) for task, model in staged[i].models.items()))
            by_models.setdefault(key, []).append(i)
        try:
            for positions in by_models.values():
                self._predict_staged([staged[i] for i in positions], [outputs[i] for i in positions])
        except Exception as exc:  # the networks failed: these frames are skipped, never the file
            self.failed_frames += len(ok)
            log.warning("%d frames skipped: the networks failed: %s", len(ok), exc, exc_info=True)
            for i in ok:
                staged[i].error = f"{type(exc).__name__}: {exc}"
        return [self._finish_frame(frame, out) for frame, out in zip(staged, outputs)]

    @staticmethod
    def _frame_outputs(frame: StagedFrame) -> dict[str, dict]:
        return {t: {} for t in frame.models if t in TASKS}

    def _predict_staged(self, frames: list[StagedFrame], outputs: list[dict[str, dict]]) -> None:
        models = frames[0].models
        for task in [t for t in self.settings.tasks if t in models]:
            spec = models[task].spec
            rows = [list(range(len(f.visible))) if task not in STABLE_TASKS else f.due for f in frames]
            parts = [_pick(f.crops[spec], r) for f, r in zip(frames, rows) if r]
            if not parts:
                continue
            t0 = time.perf_counter()
            values = models[task].predict(np.concatenate(parts))
            share = (time.perf_counter() - t0) * 1000 / max(1, len(values))
            at = 0
            for frame, out, r in zip(frames, outputs, rows):
                out[task].update(zip(r, values[at:at + len(r)]))
                at += len(r)
                frame.timings[task] = share * len(r)  # this frame's share of the batched call

    def _finish_frame(self, frame: StagedFrame, outputs: dict[str, dict]) -> FrameResult:
        self._forget(frame.ended)
        if frame.error is not None:
            return FrameResult(frame.index, frame.timestamp, [], frame.timings, error=frame.error)
        outputs = {t: v for t, v in outputs.items() if t in self.settings.tasks}
        faces = [self._face_result(seen, i, outputs, frame.shape) for i, seen in enumerate(frame.visible)]
        self._last.update({f.face_id: f for f in faces})
        held = [replace(self._last[face_id], box=box) for face_id, box in frame.held if face_id in self._last]
        return FrameResult(frame.index, frame.timestamp, faces, frame.timings, held=held)

    def annotate(self, frame_bgr: np.ndarray, result: FrameResult) -> np.ndarray:
        """A copy of the frame with every face's box and labels drawn on it."""
        return draw_faces(np.array(frame_bgr, copy=True), result.faces, result.held)

    def process(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> tuple[np.ndarray, FrameResult]:
        result = self.analyze(frame_bgr, timestamp)
        if result.error is not None:
            return frame_bgr, result
        t0 = time.perf_counter()
        try:
            annotated = self.annotate(frame_bgr, result)
        except Exception as exc:  # noqa: BLE001  (drawing must not lose the analysis)
            self.failed_frames += 1
            log.warning("frame %d: overlay failed: %s", result.frame_index, exc)
            result.error = f"overlay: {type(exc).__name__}: {exc}"
            return frame_bgr, result
        draw_ms = (time.perf_counter() - t0) * 1000
        result.timings_ms["draw"] = draw_ms
        result.timings_ms["total"] += draw_ms
        return annotated, result


@dataclass(frozen=True)
class _Seen:
    """What :meth:`FrameAnalyzer.finish` needs of a track, fixed at its frame (tracks move on)."""

    id: int
    int_box: tuple[int, int, int, int]
    found: Detection | None


@dataclass
class StagedFrame:
    """One frame detected, tracked and cropped, waiting for the networks (see ``stage``)."""

    index: int
    timestamp: float
    shape: tuple[int, ...]
    models: Mapping  # the task -> TaskModel set its crops were made for
    visible: list[_Seen]
    held: list[tuple[int, tuple[int, int, int, int]]]  # (face id, box) of faces missed this frame
    ended: list[int]  # tracks that ended at this frame
    crops: dict  # FaceSpec -> (positions in ``visible``, their uint8 crops): see ``_crops``
    due: list[int]  # positions in ``visible`` whose age and gender are estimated at this frame
    timings: dict[str, float]
    error: str | None = None


def _overlaps(a: Box, b: Box) -> bool:
    return iou(a, b) > 0.3


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) \
            or frame.shape[0] < 8 or frame.shape[1] < 8 or (frame.ndim == 3 and frame.shape[2] != 3):
        shape = getattr(frame, "shape", None)
        raise ValueError(f"not a BGR uint8 image (got {type(frame).__name__} {shape})")
