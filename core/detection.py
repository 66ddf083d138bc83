"""Face detection behind a small interface: a CNN (YuNet) by default, Haar as the fallback.

Detectors take a BGR frame and return :class:`Detection` s in that frame's pixel
coordinates: a box, and where the detector gives them a confidence and 5 landmarks
(eyes, nose tip, mouth corners, in image left-to-right order). Both detectors can
search a small window around a known face (``detect_near``), which trackers use between
full-frame scans, and can detect on a downscaled copy of the frame (``detect_width``).

YuNet (libfacedetection, BSD-3) comes from the ``yuface`` wheel, whose weights are compiled
into the binary, so nothing is downloaded. Its wheels exist for CPython 3.11 on Linux only:
elsewhere :func:`make_detector` logs it once, records why in :func:`detector_notice` (the
app shows it), and falls back to Haar. It never crashes for want of the CNN.
"""
from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.preprocess import Box, iou

log = logging.getLogger(__name__)

DETECTORS = ("yunet", "haar")
DETECTOR_LABELS = {"yunet": "CNN (YuNet, landmarks)", "haar": "Haar cascade (OpenCV)"}


@dataclass(frozen=True, eq=False)
class Detection:
    """One face: ``box`` (x, y, w, h), ``confidence`` in [0, 1] (None: the detector gives
    none, Haar), ``landmarks`` (5, 2) float32 pixels: image-left eye, image-right eye, nose
    tip, image-left and image-right mouth corner (None: the detector gives none)."""

    box: Box
    confidence: float | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False)

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> "Detection":
        """Coordinates mapped from a scaled or cropped copy: ``v / scale + offset``."""
        x, y, w, h = self.box
        box = (int(round(x / scale + dx)), int(round(y / scale + dy)), int(round(w / scale)), int(round(h / scale)))
        marks = None if self.landmarks is None else (self.landmarks / scale + np.float32([dx, dy])).astype(np.float32)
        return Detection(box, self.confidence, marks)


class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(frame_bgr) -> list[Detection]``."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


class RegionFaceDetector(FaceDetector, Protocol):
    """A detector that can also look for one known face near where it was last seen.

    Trackers use ``detect_near`` between full-frame scans: searching a small window at the
    face's own scale costs a fraction of a full scan, which keeps live analysis real-time.
    """

    def detect_near(self, frame: np.ndarray, box: Box) -> list[Detection]: ...


@dataclass(frozen=True)
class DetectorSettings:
    """Which detector and how sensitive it is.

    kind: ``yunet`` (CNN, default) or ``haar``. min_face is in full-frame pixels;
    detect_width downsizes wider frames first for full scans (0 = never).
    Haar: scale_factor/min_neighbors trade recall against false boxes.
    YuNet: min_confidence (0-1) does the same.
    """

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: int = 10
    detect_width: int = 320
    kind: str = "yunet"
    min_confidence: float = 0.6

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"unknown face detector {self.kind!r}; expected one of {', '.join(DETECTORS)}")

    @classmethod
    def from_sensitivity(cls, sensitivity: float, min_face: int = 10, detect_width: int = 320,
                         kind: str = "yunet") -> "DetectorSettings":
        """Map a user-facing sensitivity in [0, 1] to the detector's own threshold.

        0.5 gives the defaults (Haar: 5 neighbours; YuNet: confidence 0.6); 1.0 finds more
        faces in poor light or at an angle but also more false boxes (2 neighbours; 0.3);
        0.0 accepts only very clear faces (8 neighbours; 0.9).
        """
        sensitivity = min(1.0, max(0.0, float(sensitivity)))
        return cls(min_neighbors=int(round(8 - 6 * sensitivity)), min_face=int(min_face),
                   detect_width=int(detect_width), kind=kind,
                   min_confidence=round(0.9 - 0.6 * sensitivity, 3))

    @property
    def sensitivity(self) -> float:
        """Inverse of :meth:`from_sensitivity` (clipped to [0, 1])."""
        if self.kind == "yunet":
            return min(1.0, max(0.0, (0.9 - self.min_confidence) / 0.6))
        return min(1.0, max(0.0, (8 - self.min_neighbors) / 6))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorSettings":
        """Settings recorded by any version: older ones had no ``kind`` (they ran Haar)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known.setdefault("kind", "haar")
        return cls(**known)


# -- window geometry, shared by both detectors' near searches ------------------------
# The window reaches this fraction of the face size beyond each side of the last box, and is
# rescaled so that the face spans ``face_px`` pixels.
NEAR_SEARCH_MARGIN = 0.5


def _near_window(frame: np.ndarray, box: Box, face_px: int, margin: float = NEAR_SEARCH_MARGIN):
    """(window rescaled so the face spans ``face_px``, x0, y0, scale), or None when empty.

    The window reaches ``margin`` times the face size beyond each side of ``box``."""
    x, y, w, h = (int(v) for v in box)
    size = max(w, h, 1)
    fh, fw = frame.shape[:2]
    pad = int(round(margin * size))
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(fw, x + w + pad), min(fh, y + h + pad)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = face_px / size
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=interp), x0, y0, scale


def _downscaled(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    if width and frame.shape[1] > width:
        scale = width / frame.shape[1]
        return cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale
    return frame, 1.0


# -- Haar ----------------------------------------------------------------------------
def haar_cascade_path(name: str = "haarcascade_frontalface_default.xml") -> Path:
    path = Path(cv2.data.haarcascades) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"OpenCV's Haar cascade {name} is missing ({path}); install opencv-python-headless<5, "
            "which still bundles the cascades"
        )
    return path


# Haar near-search: faces from HAAR_NEAR_PX / 1.5 to HAAR_NEAR_PX * 1.5 pixels in the rescaled
# window are found; the narrow size range allows a coarser scale step than a full scan's
# (measured on the shared clips: 1.2 finds 99 % of the faces 1.1 finds, for two thirds of the cost).
HAAR_NEAR_PX = 56
HAAR_NEAR_SIZE_RANGE = 1.5
HAAR_NEAR_SCALE_FACTOR = 1.2
HAAR_DETECT_WIDTH = 320  # Haar's full scans cost 54 ms at 640x480: it always scans at most this wide


class HaarFaceDetector:
    """OpenCV Viola-Jones frontal-face detector (bundled with opencv-python-headless<5):
    boxes only, no confidence or landmarks. Not thread-safe: one instance per thread."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings(kind="haar")
        self._cascade = cv2.CascadeClassifier(str(haar_cascade_path()))
        if self._cascade.empty():
            raise RuntimeError("OpenCV could not load the Haar face cascade")

    def _gray(self, image: np.ndarray) -> np.ndarray:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return cv2.equalizeHist(gray)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        s = self.settings
        small, scale = _downscaled(frame, s.detect_width or HAAR_DETECT_WIDTH)
        min_side = max(8, int(round(s.min_face * scale)))
        found = self._cascade.detectMultiScale(
            self._gray(small), scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors,
            minSize=(min_side, min_side))
        return [Detection(tuple(int(v) for v in b)).shifted(0, 0, scale) for b in np.asarray(found).reshape(-1, 4)]

    def detect_near(self, frame: np.ndarray, box: Box) -> list[Detection]:
        """Faces of about ``box``'s size in a window around it, in full-frame coordinates."""
        s = self.settings
        window = _near_window(frame, box, HAAR_NEAR_PX)
        if window is None:
            return []
        roi, x0, y0, scale = window
        min_side = max(24, int(HAAR_NEAR_PX / HAAR_NEAR_SIZE_RANGE), int(round(s.min_face * scale)))
        max_side = int(HAAR_NEAR_PX * HAAR_NEAR_SIZE_RANGE)
        if min_side > max_side or min(roi.shape[:2]) < min_side:
            return []
        found = self._cascade.detectMultiScale(
            self._gray(roi), scaleFactor=max(s.scale_factor, HAAR_NEAR_SCALE_FACTOR), minNeighbors=s.min_neighbors,
            minSize=(min_side, min_side), maxSize=(max_side, max_side))
        return [Detection(tuple(int(v) for v in b)).shifted(x0, y0, scale) for b in np.asarray(found).reshape(-1, 4)]


# -- YuNet ---------------------------------------------------------------------------
# Near-search: the window reaches YUNET_NEAR_MARGIN face sizes beyond the last box and is
# rescaled so the face spans YUNET_NEAR_PX pixels: at most 63 px a side, under the 64 px that
# YuNet rounds its input up to (a larger window costs twice as much). Against 48 px in a window
# of 0.5 face sizes, it halves the search's cost with nearly the same boxes and landmarks
# (`python -m benchmarks.near_search`, docs/detection.md).
YUNET_NEAR_PX = 39
YUNET_NEAR_MARGIN = 0.3
YUNET_THREADS = 1  # OpenMP threads per call: the video codecs and the networks need the other core


YUNET_RESULT_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE: a count, then 16 int16 per face
_YUNET_SYMBOL = "_Z14facedetect_cnnPhS_iii"  # int* facedetect_cnn(uchar* result, uchar* bgr, int w, int h, int step)
_yunet_lock = threading.Lock()
_yunet: tuple | None = None


def _ctypes_detect(lib: ctypes.CDLL):
    """libfacedetection's C entry point called through ctypes, which lets go of the GIL.

    yuface's own binding holds the GIL for a whole detection (8-14 ms for a 320-wide scan),
    so a scan on a worker thread stalled the frame path's Python code for as long. The rows
    are the binding's: confidence (0-100), x, y, w, h, 5 landmark (x, y) pairs, one spare.
    """
    fn = lib[_YUNET_SYMBOL]
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]

    def detect(image: np.ndarray) -> np.ndarray:
        result = np.empty(YUNET_RESULT_BYTES, np.uint8)  # one buffer per call: callers may be on any thread
        found = fn(result.ctypes.data, image.ctypes.data, image.shape[1], image.shape[0], image.strides[0])
        count = int(found[0]) if found else 0
        rows = np.frombuffer(result, np.int16, count * 16, offset=4).reshape(count, 16).copy()
        rows[:, 15] = 0
        return rows

    return detect


def _load_yunet():
    """YuNet's detect function (BGR uint8 image -> (n, 16) rows) and its OpenMP runtime.

    The weights initialise on the first call, unguarded in libfacedetection, so that call
    is made here, once, under a lock, before any thread can race it.
    """
    global _yunet
    with _yunet_lock:
        if _yunet is None:
            import yuface  # noqa: F401  (ImportError on platforms without a wheel; loads the libraries)
            from yuface.yuface import detect as bound_detect

            package = Path(yuface.__file__).resolve().parent
            gomp = next(iter(sorted((package.parent / "yuface.libs").glob("libgomp*"))), None)
            library = next(iter(sorted(package.glob("libfacedetection.so*"))), None)
            try:
                raw = _ctypes_detect(ctypes.CDLL(str(library)))
            except (TypeError, OSError, AttributeError) as exc:  # another yuface build: its binding still works
                log.info("YuNet through yuface's binding (holds the GIL while it runs): %s", exc)
                raw = bound_detect
            omp = ctypes.CDLL(str(gomp)) if gomp is not None else None
            if omp is not None:
                omp.omp_set_num_threads(YUNET_THREADS)
            raw(np.zeros((32, 32, 3), np.uint8))
            _yunet = raw, omp
        return _yunet


class YuNetFaceDetector:
    """libfacedetection's YuNet CNN through the ``yuface`` wheel: box, confidence, 5 landmarks.

    OpenMP's thread count is a per-thread setting, so it is set (to :data:`YUNET_THREADS`)
    once in every thread that calls the detector. Calls from several threads are safe: each
    works on its own buffers, and none holds the GIL (see :func:`_ctypes_detect`).
    """

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._raw, self._gomp = _load_yunet()
        self._threads = threading.local()

    def _run(self, image: np.ndarray) -> list[Detection]:
        if self._gomp is not None and not getattr(self._threads, "set", False):
            self._gomp.omp_set_num_threads(YUNET_THREADS)
            self._threads.set = True
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        rows = np.asarray(self._raw(np.ascontiguousarray(image)), dtype=np.float32).reshape(-1, 16)
        keep = rows[:, 0] >= 100 * self.settings.min_confidence
        return [Detection(tuple(int(v) for v in row[1:5]), float(row[0]) / 100, row[5:15].reshape(5, 2).copy())
                for row in rows[keep]]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        small, scale = _downscaled(frame, self.settings.detect_width)
        min_face = self.settings.min_face
        found = [d.shifted(0, 0, scale) for d in self._run(small)]
        return [d for d in found if max(d.box[2], d.box[3]) >= min_face]

    def detect_near(self, frame: np.ndarray, box: Box) -> list[Detection]:
        """The known face in a window around ``box`` (at most one, full-frame coordinates).

        YuNet now and then answers a window with the face twice (a second, larger or
        narrower box about it): only the answer that overlaps the known box most is the
        face; neighbours in the window have searches of their own, newcomers come from scans.
        """
        window = _near_window(frame, box, YUNET_NEAR_PX, YUNET_NEAR_MARGIN)
        if window is None:
            return []
        roi, x0, y0, scale = window
        size = max(box[2], box[3], 1)
        found = [d.shifted(x0, y0, scale) for d in self._run(roi)]
        found = [d for d in found if 0.5 * size <= max(d.box[2], d.box[3]) <= 2.0 * size
                 and max(d.box[2], d.box[3]) >= self.settings.min_face]
        return [max(found, key=lambda d: (iou(d.box, box), d.confidence))] if found else []


_notice: str | None = None
_notice_lock = threading.Lock()


def detector_notice() -> str | None:
    """Why the CNN detector is not in use on this machine (None when it is available)."""
    return _notice


def yunet_available() -> bool:
    try:
        _load_yunet()
    except (ImportError, OSError):
        return False
    return True


def make_detector(settings: DetectorSettings | None = None) -> HaarFaceDetector | YuNetFaceDetector:
    """The detector ``settings.kind`` names; Haar, said once, where YuNet cannot be loaded."""
    global _notice
    settings = settings or DetectorSettings()
    if settings.kind == "yunet":
        try:
            return YuNetFaceDetector(settings)
        except (ImportError, OSError) as exc:
            with _notice_lock:
                if _notice is None:
                    _notice = (f"The CNN face detector (yuface) cannot be loaded here ({exc}); using OpenCV's "
                               "Haar cascade instead, which misses more faces. yuface has wheels for "
                               "CPython 3.11 on Linux x86-64.")
                    log.warning(_notice)
            settings = replace(settings, kind="haar")
    return HaarFaceDetector(settings)


def effective_settings(settings: DetectorSettings) -> DetectorSettings:
    """The settings that really run here (kind ``haar`` when YuNet falls back): recorded
    with sessions and cards, so a record never claims a detector that did not run."""
    return settings if settings.kind != "yunet" or yunet_available() else replace(settings, kind="haar")
