"""The one face preprocessing function, shared by training, evaluation and live inference.

Every model card stores its :class:`FaceSpec`; the same spec turns a face box in a
camera frame (live, video files) or a whole face image (training sets) into the
network's input, so train-time and run-time inputs can never drift apart.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class FaceSpec:
    """How a face becomes a network input.

    margin: fraction of the box width/height added on every side before cropping
    (0.0 = the detector's box as is). channels: 1 (grayscale) or 3 (BGR colour).
    recrop: training images that already are face crops (FER2013) are cropped again
    by the face detector, like live frames (the seed design's emotion recipe); UTKFace
    images always are, since they show more than the face.
    align: where the detector gives eye landmarks, the crop is turned so that the eyes are
    level (the box's size sets the scale); without landmarks the crop is the plain box, as
    with align off.
    detector: the face detector whose boxes (and landmarks) training crops were cut at
    (``core.detection.DETECTORS``); cards written before it existed were cut by Haar.
    square: crop a square about the box's centre (side: the mean of its width and height)
    rather than the box itself, so a face keeps its proportions when it is resized to the
    network's square input. Haar's boxes are square already; YuNet's are about 1.15-1.3
    times taller than wide. Cards written before it existed crop the box itself.
    """

    size: int = 48
    channels: int = 1
    margin: float = 0.0
    recrop: bool = False
    align: bool = False
    detector: str = "yunet"
    square: bool = True

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FaceSpec":
        return cls(size=int(data["size"]), channels=int(data["channels"]), margin=float(data["margin"]),
                   recrop=bool(data.get("recrop", False)), align=bool(data.get("align", False)),
                   detector=str(data.get("detector", "haar")), square=bool(data.get("square", False)))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


def square_box(box: Box) -> Box:
    """The square about a box's centre whose side is the mean of the box's width and height."""
    x, y, w, h = box
    side = (w + h) / 2
    return (int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), int(round(side)), int(round(side)))


def expand_box(box: Box, margin: float) -> Box:
    """Grow a box by ``margin`` of its size on every side (may leave the image)."""
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    return (x - dx, y - dy, w + 2 * dx, h + 2 * dy)


def crop_box(image: np.ndarray, box: Box) -> np.ndarray:
    """Crop ``box`` from ``image``, replicating edge pixels where the box leaves the image."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"empty face box {box}")
    ih, iw = image.shape[:2]
    pad_l, pad_t = max(0, -x), max(0, -y)
    pad_r, pad_b = max(0, x + w - iw), max(0, y + h - ih)
    crop = image[max(0, y): min(ih, y + h), max(0, x): min(iw, x + w)]
    if crop.size == 0:
        raise ValueError(f"face box {box} lies outside the {iw}x{ih} image")
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    return crop


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if channels == 1:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


# Eye lines steeper than this are landmark errors (YuNet now and then swaps the eyes of a
# blurred face), not heads: such faces are cut as plain boxes.
MAX_ALIGN_ANGLE = np.radians(50)


def eye_angle(landmarks: np.ndarray) -> float:
    """Roll of the face in radians: the angle of the line from the image-left to the image-right eye."""
    (lx, ly), (rx, ry) = np.asarray(landmarks, dtype=np.float64)[:2]
    return float(np.arctan2(ry - ly, rx - lx))


def _aligned_crop(image: np.ndarray, box: Box, landmarks: np.ndarray, spec: FaceSpec) -> np.ndarray:
    """The face turned upright about its box centre, cut and sized as the plain crop would be.

    The box's size sets the scale: YuNet boxes the face itself, not the turned face's
    bounding rectangle (measured on the shared clips turned by 20 degrees: the box grows by
    about 5 %, not the 28 % a bounding rectangle would), so no correction for the turn is
    applied. Large downscales go through an area resize first, so the turn never aliases.
    """
    x, y, w, h = (float(v) for v in box)
    angle = eye_angle(landmarks)
    cw, ch = w * (1 + 2 * spec.margin), h * (1 + 2 * spec.margin)
    if cw < 1 or ch < 1:
        raise ValueError(f"empty face box {box}")
    cx, cy = x + w / 2, y + h / 2
    reach = int(np.ceil(0.5 * np.hypot(cw, ch))) + 2  # the turned crop lies within this square
    region = crop_box(image, (int(round(cx)) - reach, int(round(cy)) - reach, 2 * reach, 2 * reach))
    ox, oy = cx - (int(round(cx)) - reach), cy - (int(round(cy)) - reach)  # centre within region
    factor = min(1.0, 2.0 * spec.size / max(cw, ch))  # keep about 2 px of region per output px
    if factor < 1.0:
        region = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        ox, oy, cw, ch = ox * factor, oy * factor, cw * factor, ch * factor
    sx, sy = cw / spec.size, ch / spec.size  # region pixels per output pixel
    cos, sin = np.cos(angle), np.sin(angle)
    # output pixel centre (u, v) -> region: centre + R(angle) @ diag(sx, sy) @ ((u, v) - middle);
    # pixel centres sit at integer coordinates (OpenCV's convention, as in cv2.resize)
    middle = (spec.size - 1) / 2
    to_region = np.array([[cos * sx, -sin * sy, 0.0], [sin * sx, cos * sy, 0.0]])
    to_region[:, 2] = np.array([ox - 0.5, oy - 0.5]) - to_region[:, :2] @ [middle, middle]
    return cv2.warpAffine(region, to_region, (spec.size, spec.size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def preprocess_face(image: np.ndarray, spec: FaceSpec, box: Box | None = None,
                    landmarks: np.ndarray | None = None) -> np.ndarray:
    """Return the ``uint8`` network input (size, size, channels) for one face.

    ``image`` is a BGR (or grayscale) frame; ``box`` is the detector's face box in it,
    or ``None`` when the image already is a face crop (training sets); ``landmarks`` are
    the detector's (5, 2) points, used when ``spec.align``. Pixel scaling to [0, 1]
    happens inside the networks (a ``Rescaling`` layer), so inputs stay compact ``uint8``
    for caching and augmentation.
    """
    if box is not None and spec.square:
        box = square_box(box)
    if box is not None and spec.align and landmarks is not None and abs(eye_angle(landmarks)) <= MAX_ALIGN_ANGLE:
        face = _aligned_crop(_to_channels(image, spec.channels), box, landmarks, spec)
        return face.reshape(spec.input_shape)
    if box is not None:
        image = crop_box(image, expand_box(box, spec.margin))
    image = _to_channels(image, spec.channels)
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > spec.size else cv2.INTER_LINEAR
    face = cv2.resize(image, (spec.size, spec.size), interpolation=interp)
    return face.reshape(spec.input_shape)


def preprocess_faces(image: np.ndarray, spec: FaceSpec, boxes: Sequence[Box],
                     landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Batch of network inputs for every box of one frame: (n, size, size, channels) uint8."""
    if len(boxes) == 0:
        return np.zeros((0, *spec.input_shape), dtype=np.uint8)
    marks = landmarks if landmarks is not None else [None] * len(boxes)
    if spec.align and spec.channels == 1 and image.ndim == 3:
        image = _to_channels(image, 1)  # once per frame, not once per face
    return np.stack([preprocess_face(image, spec, box, m) for box, m in zip(boxes, marks)])


def preprocess_images(images: Iterable[np.ndarray], spec: FaceSpec) -> np.ndarray:
    """Batch of network inputs from whole face images (the training path)."""
    return np.stack([preprocess_face(img, spec) for img in images])
