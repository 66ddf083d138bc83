"""Packed data sets: one task's preprocessed faces, labels and splits in a single ``.npz``.

Training needs only the network inputs, yet the downloads are 60-100 MB archives whose
decoding (and, for UTKFace, face detection) takes a minute. A pack holds the faces
already cropped for one :class:`FaceSpec`, each WebP-encoded, so a machine without the
archives, a rented GPU say, trains from one file: ``python -m training fit --data pack.npz``
reads it like any source. Lossless (quality 101, the default) it is about the archive's size;
at quality 85-90 the train and validation faces of FER2013 or UTKFace take about 30 MB.
"""
from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core import tasks
from core.preprocess import FaceSpec
from training.archives import DataError
from training.data import load_all
from training.pack_format import LOSSLESS, PACK_FORMAT, is_pack, load_pack

__all__ = ["LOSSLESS", "PACK_FORMAT", "is_pack", "load_pack", "pack"]  # the readers: from training.pack_format
log = logging.getLogger(__name__)


def _encode(face: np.ndarray, quality: int) -> bytes:
    image = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR) if face.shape[-1] == 1 else face
    ok, data = cv2.imencode(".webp", np.ascontiguousarray(image), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise DataError(f"could not encode a face of shape {face.shape} as WebP")
    return data.tobytes()


def pack(task: str, data: str | Path, out: str | Path, splits: Sequence[str] = ("train", "val", "test"),
         quality: int = LOSSLESS, spec: FaceSpec | None = None) -> dict:
    """Write ``splits`` of ``task``'s data set at ``data`` to ``out``; return a summary.

    Age and gender read the same UTKFace faces, so one pack serves both tasks.
    """
    if not 1 <= quality <= LOSSLESS:
        raise ValueError(f"quality must be 1-100 (lossy) or 101 (lossless), not {quality}")
    info = tasks.get(task)
    kind = info.data_kind
    spec = spec or info.default_spec
    source = Path(data)
    full = load_all(kind, source, spec)
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
