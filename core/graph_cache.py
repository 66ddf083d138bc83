"""Frozen inference graphs kept on disk, so that a process loads its networks in a fraction of the time.

Keras rebuilds a saved model layer by layer and TensorFlow then traces it, in every process
that analyses (each batch worker, each CLI run, the app), and each session optimizes its graph
at its first call. A frozen graph (the weights as constants: :func:`core.models.freeze_graph`;
already optimized for the CPU: :func:`core.models.optimize_graph`) is written here once per
model file and imported directly by later processes, without rebuilding, tracing or
optimizing anything (``python -m benchmarks.models`` prints both costs; docs/benchmarks.md).

The file is named after the model file's SHA-256, the input shape, the TensorFlow version
and :data:`FORMAT`, so a retrained or replaced model, or another TensorFlow, never meets a
stale graph. A damaged file is rebuilt; a folder that cannot be written costs only the speed.
Graphs unread for :data:`UNUSED_DAYS` are deleted when a new one is written.
``FACESENSE_GRAPH_CACHE`` moves the folder (default: ``graphs`` in the app's cache folder).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from core.config import app_paths
from core.disk import file_hash, prune

log = logging.getLogger(__name__)

FORMAT = 2  # bump when what is written changes (2: frozen, then optimized by core.models.optimize_graph)
INPUT, OUTPUT = "facesense_input", "facesense_output"  # the graph's tensor names (":0" appended)
UNUSED_DAYS = 30.0  # a graph no process has read for this long is deleted when another is written


def cache_folder() -> Path:
    override = os.environ.get("FACESENSE_GRAPH_CACHE")
    return Path(override).expanduser() if override else app_paths().cache_dir / "graphs"


def cache_path(model_path: Path, input_shape: Sequence[int], tf_version: str, folder: Path | None = None) -> Path:
    shape = "x".join(map(str, input_shape))
    key = hashlib.sha256(f"{file_hash(model_path)}|{shape}|{tf_version}|{FORMAT}".encode()).hexdigest()[:24]
    return (folder or cache_folder()) / f"{Path(model_path).stem}-{key}.pb"


def cached_graph_def(tf, model_path: Path, input_shape: Sequence[int], build: Callable[[], object]):
    """The frozen ``GraphDef`` of the model in ``model_path``: read from the cache, or made by
    ``build()`` (which loads and freezes the model) and written there for the next process."""
    path = cache_path(model_path, input_shape, tf.__version__)
    if path.is_file():
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
            if {INPUT, OUTPUT} <= {node.name for node in graph_def.node}:
                log.debug("frozen graph of %s read from %s", model_path, path)
                with contextlib.suppress(OSError):
                    os.utime(path)  # in use: not pruned
                return graph_def
        except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError and OSError: rebuilt below)
            log.warning("frozen graph %s is damaged (%s); rebuilding it", path, exc)
        else:
            log.warning("frozen graph %s lacks its input or output; rebuilding it", path)
    graph_def = build()
    _write_atomically(path, graph_def.SerializeToString())
    prune(path.parent, pattern="*.pb", keep=[path], max_age_s=UNUSED_DAYS * 86400)
    return graph_def


def _write_atomically(path: Path, data: bytes) -> None:
    """Another process reading at the same time sees the old file or the whole new one, never half."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from the lab's other accounts
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("cannot keep the frozen graph in %s (%s): the next process freezes the model again",
                    path.parent, exc)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
