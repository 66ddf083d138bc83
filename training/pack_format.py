"""Reading packed data sets (``.npz`` files written by :func:`training.pack.pack`).

The loaders (:mod:`training.data`) read packs like any source; the writer needs the
loaders, so the two halves live apart and neither imports the other's module in a cycle.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.preprocess import FaceSpec
from core.tasks import DATA_KINDS
from training.archives import DataError

PACK_FORMAT = "facesense-pack-1"
LOSSLESS = 101  # OpenCV's WebP quality above 100 means lossless


def is_pack(path: Path) -> bool:
    """True for a file meant as a pack (``.npz``); :func:`load_pack` says clearly if it is not one."""
    return path.is_file() and path.suffix.lower() == ".npz"


def decode_face(data: np.ndarray, spec: FaceSpec) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if spec.channels == 1 else cv2.IMREAD_COLOR
    face = cv2.imdecode(data, flag)
    if face is None or face.shape[:2] != (spec.size, spec.size):
        raise DataError("a face in the pack could not be decoded (truncated or altered file)")
    return face.reshape(spec.input_shape)


def load_pack(path: Path, kind: str, spec: FaceSpec) -> dict:
    """A pack's contents in the form the loaders produce (``x`` decoded, ``meta`` a DataFrame)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path.name}: unreadable pack ({exc})") from exc
    if str(arrays.get("format")) != PACK_FORMAT:
        raise DataError(f"{path.name}: not a FaceSense pack (write one with `python -m training pack`)")
    if str(arrays["kind"]) != kind:
        packed_kind = DATA_KINDS.get(str(arrays["kind"]))
        raise DataError(f"{path.name} packs {packed_kind.title if packed_kind else str(arrays['kind'])} faces, "
                        f"which this task does not train on")
    packed = FaceSpec.from_dict(json.loads(str(arrays["spec"])))
    if (packed.size, packed.channels, packed.recrop) != (spec.size, spec.channels, spec.recrop) or (
            kind == "utk" and packed.margin != spec.margin):
        raise DataError(f"{path.name} holds faces preprocessed as {packed}, but this model needs {spec}; "
                        "pack the data set again for it")
    blob, offsets = arrays.pop("blob"), arrays.pop("offsets")
    arrays["x"] = np.stack([decode_face(blob[a:b], spec) for a, b in zip(offsets[:-1], offsets[1:])])
    if "meta" in arrays:
        arrays["meta"] = pd.read_json(io.StringIO(str(arrays["meta"])))
    return arrays
