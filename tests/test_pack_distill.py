"""Packs (a data set's preprocessed faces in one file, for training elsewhere) and distillation.

The shipped models were trained on a rented GPU from packs, distilled from larger
teachers; these tests hold the two promises that makes: a pack gives back the faces
the loaders give (exactly when lossless), and a distilled run's targets and card are
what its command says.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import core  # noqa: F401  (before anything that may load TensorFlow)
from training.archives import DataError
from training.builders import build_model
from training.cli import main
from training.data import load_dataset
from training.ensemble import EnsembleConfig, combine
from training.fit import FitConfig, fit, soft_targets
from training.task_heads import targets
from training.pack import pack
from training.select import score_candidates
from training_data import small_fer_zip, small_utk_tar


def test_a_lossless_pack_gives_back_the_loaders_faces_and_a_lossy_one_close_ones(tmp_path, capsys):
    data = small_fer_zip(tmp_path)
    lossless = tmp_path / "fer.npz"
    assert main(["pack", "--task", "emotion", "--data", str(data), "--out", str(lossless)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["faces"] == {"train": 280, "val": 56, "test": 56} and summary["quality"] == 101
    for split in ("train", "val", "test"):
        direct, packed = load_dataset("emotion", data, split), load_dataset("emotion", lossless, split)
        assert np.array_equal(direct.x, packed.x) and np.array_equal(direct.y, packed.y)
    assert "packed by `python -m training pack --task emotion" in packed.split_source

    lossy = tmp_path / "fer_q90.npz"
    pack("emotion", data, lossy, splits=("train", "val"), quality=90)
    assert lossy.stat().st_size < lossless.stat().st_size
    direct, packed = load_dataset("emotion", data, "train"), load_dataset("emotion", lossy, "train")
    assert np.array_equal(direct.y, packed.y)
    assert 0 < np.abs(direct.x.astype(int) - packed.x).mean() < 4   # gray levels out of 255
    with pytest.raises(DataError, match="no images in the 'test' split"):
        load_dataset("emotion", lossy, "test")
    # training on it without --report-split val fails before the first epoch, not after the last
    import keras
    never = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: pytest.fail("trained without a test split"))
    with pytest.raises(DataError, match="no images in the 'test' split"):
        fit(FitConfig(task="emotion", data=str(lossy), arch="compact", epochs=5), callbacks=[never])


def test_one_utkface_pack_serves_age_and_gender_and_refuses_what_it_cannot_serve(tmp_path):
    data = small_utk_tar(tmp_path, {"train": 30, "val": 10, "test": 10})
    packed = tmp_path / "utk.npz"
    pack("age", data, packed)
    for task in ("age", "gender"):
        direct, from_pack = load_dataset(task, data, "test"), load_dataset(task, packed, "test")
        assert np.array_equal(direct.x, from_pack.x) and np.array_equal(direct.y, from_pack.y)
        assert from_pack.groups.equals(direct.groups)   # per-group figures still work
    with pytest.raises(DataError, match="which this task does not train on"):
        load_dataset("emotion", packed, "train")
    from core.preprocess import FaceSpec
    with pytest.raises(DataError, match="pack the data set again"):
        load_dataset("age", packed, "train", spec=FaceSpec(size=48, channels=3, margin=0.2))

    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="not a FaceSense pack"):
        load_dataset("age", tmp_path / "other.npz", "train")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(DataError):
        load_dataset("age", truncated, "train")
    assert main(["pack", "--task", "age", "--data", str(data), "--out", str(tmp_path / "x.npz"),
                 "--quality", "0"]) == 2


def test_soft_targets_blend_the_labels_with_the_teachers_mean_over_faces_and_mirrors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 48, 48, 1), dtype=np.uint8)
    y = rng.integers(0, 7, size=12)
    paths = []
    for seed in (0, 1):
        import keras
        keras.utils.set_random_seed(seed)
        model = build_model("emotion", "compact")
        paths.append(str(tmp_path / f"teacher{seed}.keras"))
        model.save(paths[-1])
    from core.models import load_keras_model
    from pathlib import Path
    teachers = [load_keras_model(Path(p)) for p in paths]
    views = [t.predict(v, verbose=0) for t in teachers for v in (x, x[:, :, ::-1])]
    expected = 0.3 * targets("emotion", y) + 0.7 * np.mean(views, axis=0)
    got = soft_targets("emotion", tuple(paths), x, y, 0.7)
    assert np.allclose(got, expected, atol=1e-5) and np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(soft_targets("emotion", tuple(paths), x, y, 0.0), targets("emotion", y))
    with pytest.raises(ValueError, match="between 0 and 1"):
        soft_targets("emotion", tuple(paths), x, y, 1.5)
    with pytest.raises(ValueError, match="teachers take"):
        soft_targets("emotion", tuple(paths), np.zeros((2, 64, 64, 3), np.uint8), y[:2], 0.5)


def test_a_distilled_run_from_a_pack_records_its_teachers_and_reports_on_validation(tmp_path):
    data = small_fer_zip(tmp_path)
    packed = tmp_path / "fer.npz"
    pack("emotion", data, packed, splits=("train", "val"))
    teacher = fit(FitConfig(task="emotion", data=str(packed), arch="compact", epochs=1, batch_size=32,
                            report_split="val", out=str(tmp_path / "teacher")))
    student = fit(FitConfig(task="emotion", data=str(packed), arch="compact", epochs=1, batch_size=32, seed=1,
                            teachers=(str(teacher.model_path),), distill=0.6, report_split="val", workers=1,
                            out=str(tmp_path / "student")))
    card = student.card
    assert card["metrics"]["split"] == "val" and card["metrics"]["n"] == 56
    assert "--teacher" in card["command"] and "--distill 0.6" in card["command"]
    assert "--report-split val" in card["command"] and "--workers" not in card["command"]
    assert card["teachers"] == [{"model": str(teacher.model_path), "command": teacher.card["command"],
                                 "training_runs": [{"command": teacher.card["command"], "epochs": 1}]}]
    assert card["options"]["teachers"] == [str(teacher.model_path)] and card["options"]["distill"] == 0.6

    # the shipped form (a combined model) lists the teacher's run first, marked, and does not count its epochs
    combined = combine(EnsembleConfig(task="emotion", data=str(data), models=[str(student.model_path)]))
    assert combined.card["training_runs"] == [
        {"command": teacher.card["command"], "epochs": 1, "role": "teacher"},
        {"command": card["command"], "epochs": 1}]
    assert combined.card["epochs"] == 1 and combined.card["metrics"]["split"] == "test"
    assert combined.card["dataset"]["report_split"] == "test"        # not the member's "val"
    assert combined.card["dataset"]["evaluated_on"] == data.name
    assert combined.card["dataset"]["source"] == "fer.npz"           # what it was trained from

    # choosing what to ship: every candidate scored from one prediction pass per model and view
    # gives the figures ``ensemble`` gives for it, ranked by validation
    rows = score_candidates("emotion", str(data), [str(teacher.model_path), str(student.model_path)])
    assert len(rows) == 6 and [r["val"] for r in rows] == sorted((r["val"] for r in rows), reverse=True)
    mirrored = next(r for r in rows if r["models"] == [str(student.model_path)] and r["mirror"])
    assert mirrored["passes"] == 2 and mirrored["test"] == pytest.approx(combined.card["metrics"]["accuracy"])
    for flip in (False, True):  # the pair, and the pair with its mirror images
        pair = next(r for r in rows if len(r["models"]) == 2 and r["mirror"] == flip)
        both = combine(EnsembleConfig(task="emotion", data=str(data), flip=flip,
                                      models=[str(teacher.model_path), str(student.model_path)]))
        assert pair["passes"] == (4 if flip else 2)
        assert pair["test"] == pytest.approx(both.card["metrics"]["accuracy"])
