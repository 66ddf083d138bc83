"""Warm restarts (``fit --init``) and combined models (``training ensemble``).

The shipped models are built this way, so the tests check the two properties that
matter: a combined model computes exactly the average of its members on the face
and its mirror image, in training-time evaluation and after a save/load as the app
loads it; and the card of a combined model lists every run needed to rebuild it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import core  # noqa: F401  (before anything that may load TensorFlow)
import keras
from core.models import TaskModel
from training.builders import build_ensemble, build_model, input_spec
from training.cli import main
from training.ensemble import EnsembleConfig, combine
from training.fit import FitConfig, fit, save
from training_data import small_fer_zip


def _faces(spec, n=5):
    """Random faces, bright on the left and dark on the right, so their mirror images differ a lot."""
    x = np.random.default_rng(1).integers(0, 128, (n, *spec.input_shape)).astype(np.uint8)
    x[:, :, : spec.size // 2] += 127
    return x


@pytest.mark.parametrize("task", ["emotion", "age"])
def test_ensemble_is_the_mean_over_members_and_mirror_views_after_save_and_load(tmp_path, task):
    keras.utils.set_random_seed(0)
    spec = input_spec(task, "compact")
    members = [build_model(task, "compact", spec) for _ in range(2)]
    x = _faces(spec)
    views = [np.asarray(m(v, training=False)) for m in members for v in (x, x[:, :, ::-1])]
    expected = np.mean(views, axis=0)
    assert np.abs(views[0] - views[1]).max() > 1e-6, "the mirrored faces must give other outputs"
    combined = build_ensemble(members, flip=True)
    np.testing.assert_allclose(np.asarray(combined(x, training=False)), expected, atol=1e-5)

    card = {"task": task, "preprocess": spec.to_dict(), "class_names": []}
    path = save(combined, card, {"n": 0}, tmp_path / "combined")
    loaded = TaskModel.load(path, card)
    np.testing.assert_allclose(loaded.predict(x), expected if task == "emotion" else expected.reshape(-1),
                               atol=1e-5)


def test_ensemble_without_flip_and_mismatched_inputs():
    spec = input_spec("gender", "compact")
    member = build_model("gender", "compact", spec)
    x = _faces(spec)
    single = build_ensemble([member], flip=False)
    np.testing.assert_allclose(np.asarray(single(x)), np.asarray(member(x)), atol=1e-6)
    other = build_model("emotion", "compact")
    with pytest.raises(ValueError, match="different inputs"):
        build_ensemble([build_model("gender", "compact", spec), other])
    with pytest.raises(ValueError, match="at least one"):
        build_ensemble([])


def test_warm_restart_then_ensemble_records_every_run_on_real_faces(tmp_path, capsys):
    data = str(small_fer_zip(tmp_path))
    first = fit(FitConfig(task="emotion", data=data, arch="compact", epochs=1, batch_size=32,
                          out=str(tmp_path / "first")))
    second = fit(FitConfig(task="emotion", data=data, arch="compact", epochs=1, batch_size=32, seed=1,
                           init=str(first.model_path), out=str(tmp_path / "second")))
    assert second.card["init"]["command"] == first.card["command"]
    assert "--init" in second.card["command"]

    result = combine(EnsembleConfig(task="emotion", data=data, out=str(tmp_path / "combined"),
                                    models=[str(first.model_path), str(second.model_path)]))
    card = json.loads((tmp_path / "combined" / "card.json").read_text())
    assert [r["command"] for r in card["training_runs"]] == [first.card["command"], second.card["command"]]
    assert card["epochs"] == 2 and card["ensemble"]["mirror_average"] is True
    assert card["params"] == 2 * first.card["params"]
    assert card["metrics"]["n"] == result.evaluation["n"] == 56   # 8 PrivateTest faces x 7 classes

    # a combined model can be a member again: the card still lists the fit runs, each once
    nested = combine(EnsembleConfig(task="emotion", data=data, flip=False,
                                    models=[str(tmp_path / "combined" / "model.keras"), str(first.model_path)]))
    assert nested.card["training_runs"] == card["training_runs"] and nested.card["epochs"] == 2
    assert nested.card["architecture"] == "compact"

    # a card written before FaceSpec had ``recrop`` still combines; another margin does not
    card_file = tmp_path / "second" / "card.json"
    older = json.loads(card_file.read_text())
    del older["preprocess"]["recrop"]
    card_file.write_text(json.dumps(older))
    combine(EnsembleConfig(task="emotion", data=data, models=[str(first.model_path), str(second.model_path)]))
    older["preprocess"]["margin"] = 0.3
    card_file.write_text(json.dumps(older))
    with pytest.raises(ValueError, match="differently preprocessed"):
        combine(EnsembleConfig(task="emotion", data=data, models=[str(first.model_path), str(second.model_path)]))

    with pytest.raises(ValueError, match="does not match"):
        fit(FitConfig(task="emotion", data=data, arch="default", epochs=1, init=str(first.model_path)))
    # the CLI turns a wrong member into a message and exit code 2, not a traceback
    assert main(["ensemble", "--task", "age", "--data", data, "--models", str(first.model_path)]) == 2
    assert "is a model for emotion, not for age" in capsys.readouterr().err
