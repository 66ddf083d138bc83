"""FaceSense from Python (a notebook, a script), without Streamlit.

::

    from core.api import analyze_image, analyze_video, load_session

    frames = analyze_video("P07.mp4", participant="P07", tags={"condition": "A"})
    frames.groupby("face_id")["p_happy"].mean()
    faces = analyze_image("group.jpg")          # one row per face
    again = load_session(frames.attrs["session_id"])

:func:`analyze_video` stores a session like the app does and returns its rows in the
per-frame CSV schema (:data:`core.export.FRAME_COLUMNS`), equal to the CSV export of
that session. The models are loaded once per process, on the first call.
"""
import core  # noqa: F401  (first: safe native-library import order)

import logging
import threading
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from core.config import EMOTIONS
from core.export import FRAME_COLUMNS, frame_chunks
from core.markers import read_markers_csv
from core.tasks import gender_of
from core.store import SessionStore
from core.store_schema import BOX_COLUMNS, EMOTION_COLUMNS, POSE_COLUMNS
from core.tags import parse_tags

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("face_id", *BOX_COLUMNS, *EMOTION_COLUMNS, "dominant_emotion", "age", "p_female", "gender",
                 "detector_confidence", *POSE_COLUMNS)

_lock = threading.Lock()
_models = None  # core.models.ActiveModels, shared by every analyzer of this process
_analyzers: dict[tuple[str, str], object] = {}  # (use, detector) -> FrameAnalyzer


def _analyzer(use: str, detector: str):
    """The cached analyzer for ``use`` ("video" or "image"); the first call loads the models."""
    global _models
    from core.analyzer import AnalyzerSettings, FrameAnalyzer
    from core.detection import DetectorSettings
    from core.models import ActiveModels
    from core.tracking import TrackingSettings

    with _lock:
        if (use, detector) not in _analyzers:
            _models = _models or ActiveModels()
            settings = AnalyzerSettings(detector=DetectorSettings(kind=detector))
            if use == "image":  # one still: every face on its first sighting, the whole frame scanned
                settings.tracking = TrackingSettings(min_hits=1, full_scan_every=1, background_scan=False)
                settings.smoothing_window = 0
                settings.attributes_in_background = False
            analyzer = FrameAnalyzer(_models, settings)
            analyzer.warm_up()
            _analyzers[use, detector] = analyzer
        return _analyzers[use, detector]


def _store(db: str | SessionStore | None) -> SessionStore:
    return db if isinstance(db, SessionStore) else SessionStore(db)


def analyze_video(path: str | Path, *, participant: str | None = None,
                  tags: Mapping[str, str] | Iterable[str] | str | None = None,
                  markers: str | Path | Iterable[tuple[float, str]] | None = None,
                  db: str | SessionStore | None = None, detector: str = "yunet", name: str | None = None,
                  batch: str | None = None) -> pd.DataFrame:
    """Analyse a video file into a new session and return its per-frame, per-face rows.

    ``tags``: a dict, ``["condition=A", ...]`` or ``"condition=A; site=Leeds"``; ``markers``: a
    ``time_s,label`` CSV file or ``[(seconds, label), ...]``; ``db``: a SQLAlchemy URL or store
    (default: ``FACESENSE_DB_URL`` or the app's SQLite file). The columns are the per-frame CSV
    schema; ``df.attrs["session_id"]`` is the new session. A file that cannot be analysed raises
    :class:`core.video_analysis.VideoError` naming it, and leaves no session.
    """
    from core.video_analysis import analyze_video as run_video

    store = _store(db)
    tag_dict = dict(tags) if isinstance(tags, Mapping) else parse_tags(tags)
    if isinstance(markers, (str, Path)):
        marker_list = read_markers_csv(markers)
    else:
        marker_list = [(float(t), str(label)) for t, label in markers or ()]
    run = run_video(path, _analyzer("video", detector), store, name=name, participant=participant, tags=tag_dict,
                    markers=marker_list, batch=batch)
    return load_session(run.session_id, db=store)


def load_session(session_id: int, db: str | SessionStore | None = None) -> pd.DataFrame:
    """A stored session's rows in the per-frame CSV schema (as :func:`analyze_video` returns them).

    ``df.attrs["session"]`` holds the session's record (name, participant, tags, settings, ...);
    KeyError when there is no such session.
    """
    store = _store(db)
    info = store.get_session(int(session_id))
    chunks = list(frame_chunks(store, int(session_id)))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=list(FRAME_COLUMNS))
    frame.attrs["session_id"] = int(session_id)
    frame.attrs["session"] = info
    return frame


def _as_bgr(image, rgb: bool) -> np.ndarray:
    """A path (read by OpenCV), a PIL image or an array -> a BGR uint8 array."""
    import cv2

    if isinstance(image, (str, Path)):
        loaded = cv2.imread(str(Path(image).expanduser()), cv2.IMREAD_COLOR)
        if loaded is None:
            raise ValueError(f"{image}: not an image file OpenCV can read (missing, or not a picture)")
        return loaded
    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    is_rgb = rgb or hasattr(image, "convert")
    if array.ndim == 2:
        return cv2.cvtColor(array.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"an image array must be HxW, HxWx3 or HxWx4, not {array.shape}")
    array = array[:, :, :3].astype(np.uint8)
    return np.ascontiguousarray(array[:, :, ::-1] if is_rgb else array)


def analyze_image(image, *, rgb: bool = False, detector: str = "yunet") -> pd.DataFrame:
    """The faces of one picture, one row per face (columns :data:`IMAGE_COLUMNS`).

    ``image``: a file path (read with OpenCV), a PIL image, or a numpy array in OpenCV's BGR
    order; pass ``rgb=True`` for an RGB array (matplotlib, PIL via ``np.asarray``). Nothing
    is stored. Boxes are ``box_x, box_y, box_w, box_h`` in pixels; ``p_*`` are emotion probabilities.
    """
    bgr = _as_bgr(image, rgb)
    analyzer = _analyzer("image", detector)
    with _lock:  # one analyzer per process: calls from several threads take turns
        analyzer.reset()
        result = analyzer.analyze(bgr)
    if result.error:
        raise ValueError(f"the image could not be analysed: {result.error}")
    rows = []
    for face in result.faces:
        probs = face.emotion_probs if face.emotion_probs is not None else [None] * len(EMOTIONS)
        rows.append({"face_id": face.face_id, **dict(zip(BOX_COLUMNS, face.box)),
                     **{column: None if p is None else float(p) for column, p in zip(EMOTION_COLUMNS, probs)},
                     "dominant_emotion": face.emotion, "age": face.age, "p_female": face.gender,
                     "gender": gender_of(face.gender), "detector_confidence": face.detector_confidence,
                     **dict(zip(POSE_COLUMNS, face.pose or (None,) * len(POSE_COLUMNS)))})
    return pd.DataFrame(rows, columns=list(IMAGE_COLUMNS))
