"""Importing TensorFlow for inference without also importing JAX.

TensorFlow 2.21's TFLite helpers (``tensorflow.lite.python.util``) import JAX whenever it is
installed, for a converter that FaceSense never calls. The app's requirements have no JAX,
but the development and test environment does (``requirements-dev.txt``: the JAX-backend
test), and there it added 0.6-0.7 s to the start of every process that analyses: each
batch worker, each CLI run, each app server (``python -m benchmarks.batch`` pays it in every
worker). :func:`import_tensorflow` and :func:`import_keras` hide JAX for that one import
only, so a later ``import jax`` still works; they hide nothing when Keras is set to run on JAX.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def configured_keras_backend() -> str:
    """The backend Keras will pick, read as Keras reads it (``KERAS_BACKEND``, else the
    ``backend`` of ``$KERAS_HOME/keras.json`` or ``~/.keras/keras.json``), without importing it."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def import_tensorflow():
    """``tensorflow``, imported without JAX when Keras runs on TensorFlow (see the module's text).

    Always a real ``import`` statement, so that a thread arriving while another one imports
    TensorFlow waits for the whole module. JAX is hidden process-wide while TensorFlow loads
    (2-3 s); nothing in the app imports JAX when Keras runs on TensorFlow.
    """
    hide = "tensorflow" not in sys.modules and "jax" not in sys.modules and configured_keras_backend() == "tensorflow"
    if hide:
        sys.modules["jax"] = None  # an ImportError for TensorFlow's optional ``from jax import jit``
    try:
        import tensorflow
    finally:
        if hide and "jax" in sys.modules and sys.modules["jax"] is None:
            del sys.modules["jax"]
    return tensorflow


def import_keras():
    """``keras``; when it runs on TensorFlow, TensorFlow is imported first by :func:`import_tensorflow`
    (importing Keras imports its backend, and with it JAX)."""
    if "keras" not in sys.modules and configured_keras_backend() == "tensorflow":
        import_tensorflow()
    import keras

    return keras
