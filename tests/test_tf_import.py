"""TensorFlow is imported for inference without JAX, and JAX stays importable afterwards."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.tf_import import configured_keras_backend
from tests.conftest import REPO_ROOT

CHILD = """
import sys
import core
from core.models import keras_backend
backend = keras_backend()
hidden = "jax" not in sys.modules
import jax  # still importable: only TensorFlow's own import went without it
print(backend, hidden, jax.__name__)
"""


def test_the_configured_backend_is_read_as_keras_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert configured_keras_backend() == "tensorflow"  # no keras.json: Keras' default
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert configured_keras_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert configured_keras_backend() == "torch"  # the variable wins, as in Keras
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text("{not json")
    assert configured_keras_backend() == "tensorflow"


def test_loading_the_models_backend_imports_tensorflow_without_jax(tmp_path):
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(KERAS_HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["tensorflow", "True", "jax"]
