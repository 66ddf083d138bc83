"""Packed data sets: one task's preprocessed faces, labels and splits in a single ``.npz``.

Training needs only the network inputs, yet the downloads are 60-100 MB archives whose
decoding (and, for UTKFace, face detection) takes a minute. A pack holds the faces
already cropped for one :class:`FaceSpec`, each WebP-encoded, so a machine without the
archives, a rented GPU say, trains from one file: ``python -m training fit --data pack.npz``
reads it like any source. Lossless (quality 101, the default) it is about the archive's size;
at quality 85-90 the train and validation faces of FER2013 or UTKFace take about 30 MB.
"""
from __future__ import annotations

import io
import json
import logging
import shlex
import zipfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from core.preprocess import FaceSpec
from training.archives import DataError

log = logging.getLogger(__name__)
PACK_FORMAT = "facesense-pack-1"
LOSSLESS = 101  # OpenCV's WebP quality above 100 means lossless


def is_pack(path: Path) -> bool:
    """True for a file meant as a pack (``.npz``); :func:`load_pack` says clearly if it is not one."""
    return path.is_file() and path.suffix.lower() == ".npz"


def _encode(face: np.ndarray, quality: int) -> bytes:
    image = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR) if face.shape[-1] == 1 else face
    ok, data = cv2.imencode(".webp", np.ascontiguousarray(image), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise DataError(f"could not encode a face of shape {face.shape} as WebP")
    return data.tobytes()


def _decode(data: np.ndarray, spec: FaceSpec) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if spec.channels == 1 else cv2.IMREAD_COLOR
    face = cv2.imdecode(data, flag)
    if face is None or face.shape[:2] != (spec.size, spec.size):
        raise DataError("a face in the pack could not be decoded (truncated or altered file)")
    return face.reshape(spec.input_shape)


def pack(task: str, data: str | Path, out: str | Path, splits: Sequence[str] = ("train", "val", "test"),
         quality: int = LOSSLESS, spec: FaceSpec | None = None) -> dict:
    """Write ``splits`` of ``task``'s data set at ``data`` to ``out``; return a summary.

    Age and gender read the same UTKFace faces, so one pack serves both tasks.
    """
    from training.data import DEFAULT_SPECS, _load_all, data_kind

    if not 1 <= quality <= LOSSLESS:
        raise ValueError(f"quality must be 1-100 (lossy) or 101 (lossless), not {quality}")
    kind = data_kind(task)
    spec = spec or DEFAULT_SPECS[task]
    source = Path(data)
    full = _load_all(kind, source, spec)
    keep = np.flatnonzero(np.isin(full["split"], list(splits)))
    if len(keep) == 0:
        raise DataError(f"{source.name}: no images in the splits {list(splits)}")
    blobs = [_encode(full["x"][i], quality) for i in keep]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    command = shlex.join(["python", "-m", "training", "pack", "--task", task, "--data", str(data), "--out", str(out),
                          "--splits", *splits, "--quality", str(quality)])
    arrays = {
        "format": np.asarray(PACK_FORMAT), "kind": np.asarray(kind), "spec": np.asarray(json.dumps(spec.to_dict())),
        "blob": np.frombuffer(b"".join(blobs), np.uint8), "offsets": offsets,
        "y": full["y"][keep], "split": full["split"][keep], "skipped": full["skipped"],
        "split_source": np.asarray(f"{full['split_source']}; packed by `{command}`"),
        "split_caveat": full.get("split_caveat", np.asarray("")),
        "quality": np.asarray(quality), "source": np.asarray(source.name),
    }
    if "meta" in full:
        arrays["meta"] = np.asarray(full["meta"].iloc[keep].reset_index(drop=True).to_json())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    counts = {s: int((full["split"][keep] == s).sum()) for s in splits}
    summary = {"out": str(out), "bytes": out.stat().st_size, "faces": counts, "quality": quality,
               "spec": spec.to_dict()}
    log.info("packed %s", summary)
    return summary


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
        raise DataError(f"{path.name} packs {'FER2013' if str(arrays['kind']) == 'fer' else 'UTKFace'} faces, "
                        f"which this task does not train on")
    packed = FaceSpec.from_dict(json.loads(str(arrays["spec"])))
    if (packed.size, packed.channels, packed.recrop) != (spec.size, spec.channels, spec.recrop) or (
            kind == "utk" and packed.margin != spec.margin):
        raise DataError(f"{path.name} holds faces preprocessed as {packed}, but this model needs {spec}; "
                        "pack the data set again for it")
    blob, offsets = arrays.pop("blob"), arrays.pop("offsets")
    arrays["x"] = np.stack([_decode(blob[a:b], spec) for a, b in zip(offsets[:-1], offsets[1:])])
    if "meta" in arrays:
        arrays["meta"] = pd.read_json(io.StringIO(str(arrays["meta"])))
    return arrays
