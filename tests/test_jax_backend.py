"""Training code is Keras 3 only: it trains under JAX with TensorFlow absent (as on the GPU
machine, which has JAX but no TensorFlow), and the app loads the result under TensorFlow."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import core  # noqa: F401
from core.models import TaskModel
from tests.conftest import REPO_ROOT
from tests.training_data import small_fer_zip

# the CLI in a child where ``import tensorflow`` fails as if it were not installed (a finder that
# refuses it; ``sys.modules['tensorflow'] = None`` would not do: Keras tests for that key)
WITHOUT_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())
from training.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_fit_under_jax_without_tensorflow_and_load_under_tensorflow(tmp_path):
    pytest.importorskip("jax")
    data = small_fer_zip(tmp_path, {"Training": 12, "PublicTest": 4, "PrivateTest": 4})
    env = {**os.environ, "KERAS_BACKEND": "jax", "FACESENSE_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "fit", "--task", "emotion", "--arch", "compact",
                          "--epochs", "1", "--precision", "mixed_bfloat16", "--data", str(data),
                          "--out", str(tmp_path / "run")],
                         env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["backend"] == "jax" and card["options"]["precision"] == "mixed_bfloat16"
    assert card["metrics"]["n"] == 28
    model = TaskModel.load(tmp_path / "run" / "model.keras", card)   # this process: TensorFlow
    faces = np.random.default_rng(0).integers(0, 256, (3, *model.spec.input_shape), dtype=np.uint8)
    probs = model.predict(faces)
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
