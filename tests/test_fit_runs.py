"""Long training runs: resuming an interrupted run, and mixed-precision training.

The seed recipes take hours on a CPU, so a run must survive a closed terminal or a
reboot: the same command resumes with the weights, optimizer state and best epoch it
had, and a different command never silently takes over someone's interrupted run.
Mixed bfloat16 precision makes them about 1.8x faster on this CPU; it must not leak
into the rest of the process or into the model's outputs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import core  # noqa: F401  (before anything that may load TensorFlow)
import keras
from core.models import TaskModel
from training.builders import build_model
from training.cli import main
from training import RESUME_DIR
from training.fit import FitConfig, KeepBest, fit
from training_data import small_fer_zip


class Interrupt(keras.callbacks.Callback):
    """Stops the run like a crash at the start of ``at_epoch``; remembers the last weights and step count."""

    def __init__(self, at_epoch: int) -> None:
        super().__init__()
        self.at_epoch, self.weights, self.iterations = at_epoch, None, None

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.weights = self.model.get_weights()
        self.iterations = int(self.model.optimizer.iterations)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if epoch == self.at_epoch:
            raise RuntimeError("power cut")


class Restored(keras.callbacks.Callback):
    """Records the state a run starts from (after the backup was restored)."""

    def on_train_begin(self, logs=None) -> None:
        self.weights = self.model.get_weights()
        self.iterations = int(self.model.optimizer.iterations)


def test_an_interrupted_run_resumes_with_its_state_and_records_it(tmp_path):
    data = str(small_fer_zip(tmp_path))
    out = tmp_path / "run"
    cfg = FitConfig(task="emotion", data=data, arch="compact", epochs=3, batch_size=32, out=str(out))
    interrupt = Interrupt(at_epoch=2)
    with pytest.raises(RuntimeError, match="power cut"):
        fit(cfg, callbacks=[interrupt])
    assert not (out / "model.keras").exists()
    assert json.loads((out / RESUME_DIR / "training_metadata.json").read_text())["epoch"] == 2

    other = FitConfig(task="emotion", data=data, arch="compact", epochs=4, batch_size=32, out=str(out))
    with pytest.raises(ValueError, match="interrupted run of another command"):
        fit(other)

    restored = Restored()
    result = fit(cfg, callbacks=[restored])
    assert restored.iterations == interrupt.iterations > 0
    for before, after in zip(interrupt.weights, restored.weights):
        np.testing.assert_array_equal(before, after)
    assert len(result.history["loss"]) == 1  # only the third epoch ran again
    assert result.card["resumed_at_epochs"] == [2]
    assert 1 <= result.card["best_epoch"] <= 3
    assert (out / "model.keras").exists() and not (out / RESUME_DIR).exists()


def test_keep_best_restores_a_best_epoch_from_before_the_interruption(tmp_path):
    model = build_model("gender", "compact")
    first = KeepBest("val_accuracy", "max", tmp_path)
    first.set_model(model)
    first.on_train_begin()
    first.on_epoch_end(0, {"val_accuracy": 0.9})
    best = model.get_weights()

    model.set_weights([w + 1.0 for w in best])  # later, worse epochs after a resume
    second = KeepBest("val_accuracy", "max", tmp_path)
    second.set_model(model)
    second.on_train_begin()
    second.on_epoch_end(1, {"val_accuracy": 0.8})
    second.on_train_end()
    assert second.best_epoch == 1
    for saved, now in zip(best, model.get_weights()):
        np.testing.assert_array_equal(saved, now)


def test_mixed_precision_run_keeps_float32_weights_and_outputs_and_restores_the_policy(tmp_path):
    data = str(small_fer_zip(tmp_path))
    result = fit(FitConfig(task="emotion", data=data, arch="compact", epochs=1, batch_size=32,
                           precision="mixed_bfloat16", out=str(tmp_path / "run")))
    assert keras.mixed_precision.global_policy().name == "float32", "the process goes on in float32"
    assert result.card["options"]["precision"] == "mixed_bfloat16"
    assert "--precision mixed_bfloat16" in result.card["command"]
    assert {str(w.dtype) for w in result.model.weights} == {"float32"}
    assert str(result.model.outputs[0].dtype) == "float32", "the head computes in float32"
    assert any(str(layer.compute_dtype) == "bfloat16" for layer in result.model.layers), "the body in bfloat16"

    loaded = TaskModel.load(result.model_path, result.card)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)
    probabilities = np.asarray(loaded.predict(faces))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    with pytest.raises(ValueError, match="unknown precision"):
        fit(FitConfig(task="emotion", data=data, precision="float8"))
    with pytest.raises(SystemExit):  # argparse: usage message, exit code 2
        main(["fit", "--task", "emotion", "--data", data, "--precision", "float8"])
