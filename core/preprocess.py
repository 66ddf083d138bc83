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
    """

    size: int = 48
    channels: int = 1
    margin: float = 0.0
    recrop: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FaceSpec":
        return cls(size=int(data["size"]), channels=int(data["channels"]), margin=float(data["margin"]),
                   recrop=bool(data.get("recrop", False)))


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


def preprocess_face(image: np.ndarray, spec: FaceSpec, box: Box | None = None) -> np.ndarray:
    """Return the ``uint8`` network input (size, size, channels) for one face.

    ``image`` is a BGR (or grayscale) frame; ``box`` is the detector's face box in it,
    or ``None`` when the image already is a face crop (training sets). Pixel scaling
    to [0, 1] happens inside the networks (a ``Rescaling`` layer), so inputs stay
    compact ``uint8`` for caching and augmentation.
    """
    if box is not None:
        image = crop_box(image, expand_box(box, spec.margin))
    image = _to_channels(image, spec.channels)
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > spec.size else cv2.INTER_LINEAR
    face = cv2.resize(image, (spec.size, spec.size), interpolation=interp)
    return face.reshape(spec.input_shape)


def preprocess_faces(image: np.ndarray, spec: FaceSpec, boxes: Sequence[Box]) -> np.ndarray:
    """Batch of network inputs for every box of one frame: (n, size, size, channels) uint8."""
    if len(boxes) == 0:
        return np.zeros((0, *spec.input_shape), dtype=np.uint8)
    return np.stack([preprocess_face(image, spec, box) for box in boxes])


def preprocess_images(images: Iterable[np.ndarray], spec: FaceSpec) -> np.ndarray:
    """Batch of network inputs from whole face images (the training path)."""
    return np.stack([preprocess_face(img, spec) for img in images])
