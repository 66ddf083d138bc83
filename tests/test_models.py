"""Model save/load round trip, and the shipped models scored on fixed samples of the reporting splits."""
from __future__ import annotations

import json
import logging
import os
import tarfile
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

import core  # noqa: F401
from core import graph_cache
from core.config import SHIPPED_MODELS_DIR, TASKS
from core.models import TaskModel
from core.registry import ModelRegistry
from training.builders import build_model, input_spec
from training.data import load_dataset
from training.evaluate import evaluate
from training.fit import save
from tests.conftest import shared_path

CARD_FIELDS = {"task", "architecture", "input_shape", "preprocess", "class_names", "dataset", "metrics",
               "epochs", "params", "command"}
# fixed samples of the reporting splits and the floors the shipped models must reach on them
SAMPLE = 600
FLOORS = {"emotion": ("accuracy", 0.65), "age": ("mae", 6.5), "gender": ("accuracy", 0.90)}


@pytest.mark.parametrize("task", TASKS)
def test_save_load_round_trip(tmp_path, task):
    spec = input_spec(task, "compact")
    model = build_model(task, "compact", spec)
    card = {"task": task, "preprocess": spec.to_dict(), "class_names": []}
    path = save(model, card, {"n": 0}, tmp_path / task)
    loaded = TaskModel.load(path, json.loads((tmp_path / task / "card.json").read_text()))
    x = np.random.default_rng(0).integers(0, 256, (3, *spec.input_shape), dtype=np.uint8)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(loaded.predict(x), expected if task == "emotion" else expected.reshape(-1), atol=1e-5)
    assert not list((tmp_path / task).glob(".*tmp*"))


def _saved_compact_model(folder, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    spec = input_spec("emotion", "compact")
    card = {"task": "emotion", "preprocess": spec.to_dict(), "class_names": []}
    return save(build_model("emotion", "compact", spec), card, {"n": 0}, folder), card, spec


def test_frozen_graphs_come_from_the_cache_and_a_damaged_or_stale_one_is_never_used(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "graphs"
    monkeypatch.setenv("FACESENSE_GRAPH_CACHE", str(cache))
    path, card, spec = _saved_compact_model(tmp_path / "a", seed=1)
    x = np.random.default_rng(0).integers(0, 256, (4, *spec.input_shape), dtype=np.uint8)
    expected = TaskModel.load(path, card).predict(x)  # the traced graph of the Keras model

    first = TaskModel.load(path, card, freeze=True)
    np.testing.assert_allclose(first.predict(x), expected, atol=1e-5)
    assert first.model is not None  # read from its file to be frozen
    (graph,) = cache.glob("*.pb")
    second = TaskModel.load(path, card, freeze=True)
    assert second.model is None  # from the cache: the Keras model was never read
    np.testing.assert_allclose(second.predict(x), expected, atol=1e-5)

    graph.write_bytes(b"\x0a\x05broken")
    with caplog.at_level(logging.WARNING, logger="core.graph_cache"):
        rebuilt = TaskModel.load(path, card, freeze=True)
    assert "rebuilding it" in caplog.text
    np.testing.assert_allclose(rebuilt.predict(x), expected, atol=1e-5)
    assert TaskModel.load(path, card, freeze=True).model is None  # the rebuilt file serves again

    # a retrained model (another file content) gets a graph of its own, never the old one
    other_path, other_card, _ = _saved_compact_model(tmp_path / "b", seed=2)
    other_expected = TaskModel.load(other_path, other_card).predict(x)
    assert not np.allclose(other_expected, expected, atol=1e-3)
    np.testing.assert_allclose(TaskModel.load(other_path, other_card, freeze=True).predict(x), other_expected,
                               atol=1e-5)
    assert len(list(cache.glob("*.pb"))) == 2

    # a graph unread for longer than UNUSED_DAYS goes when another is written; one in use stays
    unused = cache / "model-of-long-ago.pb"
    unused.write_bytes(b"")
    month_ago = time.time() - (graph_cache.UNUSED_DAYS + 1) * 86400
    os.utime(unused, (month_ago, month_ago))
    os.utime(graph, (month_ago, month_ago))
    TaskModel.load(path, card, freeze=True)  # a read: marks the graph as in use
    third_path, third_card, _ = _saved_compact_model(tmp_path / "c", seed=3)
    TaskModel.load(third_path, third_card, freeze=True)  # a write: prunes
    assert not unused.exists() and graph.exists() and len(list(cache.glob("*.pb"))) == 3


def test_a_graph_cache_that_cannot_be_written_costs_only_the_speed(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("FACESENSE_GRAPH_CACHE", str(blocker / "graphs"))  # under a file: cannot be made
    path, card, spec = _saved_compact_model(tmp_path / "m", seed=3)
    x = np.random.default_rng(0).integers(0, 256, (2, *spec.input_shape), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="core.graph_cache"):
        frozen = TaskModel.load(path, card, freeze=True)
    assert "cannot keep the frozen graph" in caplog.text
    np.testing.assert_allclose(frozen.predict(x), TaskModel.load(path, card).predict(x), atol=1e-5)


@pytest.mark.parametrize("task", TASKS)
def test_shipped_model_files_and_cards(task):
    model_file, card_file = SHIPPED_MODELS_DIR / f"{task}.keras", SHIPPED_MODELS_DIR / f"{task}.json"
    assert model_file.stat().st_size < 16 * 1024 * 1024
    card = json.loads(card_file.read_text())
    assert CARD_FIELDS <= set(card)
    assert card["task"] == task and card["metrics"]["split"] == "test" and card["metrics"]["n"] > 2000
    entry = ModelRegistry().active(task)
    assert entry.is_default and entry.model_path == model_file
    model = TaskModel.from_entry(entry)
    # the card describes the network in the file, not itself
    assert list(model.model.input_shape[1:]) == card["input_shape"]
    assert model.model.count_params() == card["params"]
    assert model.model.input_shape[1:] == model.spec.input_shape


def test_frozen_models_answer_as_the_traced_ones_from_two_threads_at_once():
    """The Live page's frozen sessions give the traced graph's outputs, also while another
    thread runs another model (the frame path's emotion beside the age and gender re-estimates)."""
    from concurrent.futures import ThreadPoolExecutor

    registry = ModelRegistry()
    rng = np.random.default_rng(1)
    traced = {t: TaskModel.from_entry(registry.active(t)) for t in TASKS}
    frozen = {t: TaskModel.from_entry(registry.active(t), freeze=True) for t in TASKS}
    batches = {t: rng.integers(0, 256, (3, *traced[t].spec.input_shape), dtype=np.uint8) for t in TASKS}
    expected = {t: traced[t].predict(batches[t]) for t in TASKS}
    with ThreadPoolExecutor(3) as pool:
        runs = {t: pool.submit(lambda t=t: [frozen[t].predict(batches[t]) for _ in range(5)]) for t in TASKS}
        for task, run in runs.items():
            for out in run.result():
                assert out.shape == expected[task].shape
                np.testing.assert_allclose(out, expected[task], atol=1e-4 if task == "age" else 1e-5)


def _fer_private_sample(tmp_path):
    src = zipfile.ZipFile(shared_path("data", "fer2013_images.zip"))
    # sorted by file name (the image id), not by path: a sample of every class, not the first few folders
    names = sorted((n for n in src.namelist() if "/PrivateTest_" in n), key=lambda n: n.rsplit("/", 1)[1])[::5][:SAMPLE]
    out = tmp_path / "fer_private.zip"
    with zipfile.ZipFile(out, "w") as dst:
        for name in names:
            dst.writestr(name, src.read(name))
    return out


def _utk_test_sample(tmp_path):
    table = pd.read_csv(shared_path("data", "utkface_split.csv"))
    wanted = set(sorted(table.loc[table.split == "test", "file"])[::3][:SAMPLE])
    out = tmp_path / "utk_test.tar"
    with tarfile.open(shared_path("data", "utkface_96.tar")) as src, tarfile.open(out, "w") as dst:
        for info in src:
            if info.isfile() and info.name.split("/")[-1] in wanted:
                dst.addfile(info, src.extractfile(info))
    table.to_csv(tmp_path / "utkface_split.csv", index=False)
    return out


@pytest.mark.parametrize("task", TASKS)
def test_shipped_models_score_on_fixed_samples(tmp_path, task):
    data_path = _fer_private_sample(tmp_path) if task == "emotion" else _utk_test_sample(tmp_path)
    model = TaskModel.from_entry(ModelRegistry().active(task))
    data = load_dataset(task, data_path, "test", spec=model.spec)
    assert len(data) == SAMPLE
    metric, floor = FLOORS[task]
    value = evaluate(model, data)["metrics"][metric]
    print(f"{task} on {SAMPLE} fixed test faces: {metric} {value:.3f} (floor {floor})")
    assert (value <= floor) if metric == "mae" else (value >= floor), f"{task} {metric}={value:.3f}"


def test_shipped_emotion_on_detector_crops_as_the_live_path_meets_them(tmp_path):
    """Live emotion runs on the detector's crops (the card's detector, margin and alignment),
    not on FER2013's whole images. YuNet finds nearly every face, so the live-path accuracy
    (a face not found counts as wrong) stays close to the whole-image figure; Haar, which finds
    about 58% of these faces, loses over a third of it."""
    from benchmarks.crop_margin import detected_faces, figure, score_crops
    from training.evaluate import predict

    model = TaskModel.from_entry(ModelRegistry().active("emotion"))
    data = load_dataset("emotion", _fer_private_sample(tmp_path), "test", spec=model.spec)
    whole = figure("emotion", data.y, predict(model, data.x))
    live = {}
    for detector in ("yunet", "haar"):
        index, frames, found = detected_faces(data.x[..., 0], detector)
        crop = (model.spec.margin, model.spec.align)
        live[detector] = score_crops(model, frames, found, data.y[index], model.spec, margins=(crop[0],),
                                     aligns=(crop[1],), total=len(data.y))[crop]
        if detector == "yunet":
            assert len(index) >= 0.97 * len(data.y)
    print(f"emotion on {len(data.y)} PrivateTest images: whole {whole:.3f}, live path yunet {live['yunet']:.3f}, "
          f"haar {live['haar']:.3f}")
    assert model.spec.detector == "yunet"
    assert live["yunet"] > whole - 0.05 and live["yunet"] > live["haar"] + 0.15


def test_the_optimized_graph_computes_what_a_session_would_and_sessions_skip_the_optimizer():
    """The graph is optimized once, before it is cached: a session that skips Grappler on it
    gives a default session's outputs on the plain frozen graph bit for bit (the shipped
    emotion network: bfloat16 convolutions whose CPU rewrites need the graph placed)."""
    import tensorflow as tf

    from core.models import _session_forward, freeze_graph, load_keras_model, optimize_graph

    entry = ModelRegistry().active("emotion")
    model = TaskModel.from_entry(entry)
    plain = freeze_graph(tf, load_keras_model(entry.model_path), model.spec.input_shape)
    optimized = optimize_graph(tf, plain)
    assert len(optimized.node) < len(plain.node)  # folded and fused, not just copied
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(plain, name="")
    session = tf.compat.v1.Session(graph=graph)  # Grappler runs here, at the first call
    x = np.random.default_rng(2).integers(0, 256, (5, *model.spec.input_shape), dtype=np.uint8)
    expected = session.run(graph.get_tensor_by_name(f"{graph_cache.OUTPUT}:0"),
                           {graph.get_tensor_by_name(f"{graph_cache.INPUT}:0"): x})
    np.testing.assert_array_equal(_session_forward(tf, optimized)(x), expected)
