"""The seed design's networks layer by layer, and ``python -m training evaluate``'s one JSON line."""
from __future__ import annotations

import json
import shutil

import pytest
from keras import layers

import core  # noqa: F401
from core.config import EMOTIONS, SHIPPED_MODELS_DIR
from training.builders import TASK_WIDTH, build_model, input_spec
from training.cli import main
from tests.training_data import small_fer_zip, small_utk_tar

# (layer type, filters/units, kernel or pool size, strides, activation) as the seed design states them
CONV128 = ("Conv2D", 128, 3, 1, "relu")
POOL = ("MaxPooling2D", None, 3, 2, None)
SEED = {
    "age": [CONV128] * 3 + [POOL] + [CONV128] * 3 + [POOL]
    + [("Flatten",), ("Dropout", 0.2), ("Dense", 1024, "relu"), ("Dense", 1024, "relu"), ("Dense", 1, "linear")],
    "emotion": [CONV128] * 3 + [POOL] + [CONV128] * 3 + [POOL]
    + [("Flatten",), ("Dropout", 0.2), ("Dense", 1024, "relu"), ("Dense", 1024, "relu"), ("Dense", 7, "softmax")],
    "gender": [("Conv2D", 36, 3, 1, "relu"), POOL, ("Conv2D", 64, 3, 1, "relu"), POOL,
               ("Conv2D", 128, 3, 1, "relu"), POOL]
    + [("Flatten",), ("Dropout", 0.2), ("Dense", 512, "relu"), ("Dense", 512, "relu"), ("Dense", 1, "sigmoid")],
}


def _describe(layer) -> tuple:
    kind = type(layer).__name__
    if isinstance(layer, layers.Conv2D):
        return kind, layer.filters, layer.kernel_size[0], layer.strides[0], layer.activation.__name__
    if isinstance(layer, layers.MaxPooling2D):
        return kind, None, layer.pool_size[0], layer.strides[0], None
    if isinstance(layer, layers.Dropout):
        return kind, layer.rate
    if isinstance(layer, layers.Dense):
        return kind, layer.units, layer.activation.__name__
    return (kind,)


def _expected_params(task: str) -> int:
    """Parameter count worked out from the seed text (valid 3x3 convolutions on 48x48x3)."""
    size, channels, total = 48, 3, 0
    for item in SEED[task]:
        if item[0] == "Conv2D":
            total += (9 * channels + 1) * item[1]
            size, channels = size - 2, item[1]
        elif item[0] == "MaxPooling2D":
            size = (size - 3) // 2 + 1
        elif item[0] == "Dense":
            total += (channels + 1) * item[1]
            channels = item[1]
        elif item[0] == "Flatten":
            channels = size * size * channels
    return total


@pytest.mark.parametrize("task", ["age", "emotion", "gender"])
def test_seed_networks_are_the_seed_design(task):
    model = build_model(task, "seed")
    assert model.input_shape[1:] == (48, 48, 3) == input_spec(task, "seed").input_shape
    body = [_describe(layer) for layer in model.layers if not isinstance(layer, (layers.InputLayer, layers.Rescaling))]
    assert body == SEED[task]
    assert model.count_params() == _expected_params(task)


@pytest.mark.parametrize("task", ["age", "emotion", "gender"])
def test_compact_wide_and_large_scale_every_convolution_of_the_default_design(task):
    def filters(arch):
        return [layer.filters for layer in build_model(task, arch).layers if isinstance(layer, layers.Conv2D)]

    default = filters("default")
    assert default[0] == TASK_WIDTH[task] and default[-1] == 8 * TASK_WIDTH[task]
    assert filters("compact") == [f // 2 for f in default]
    assert filters("wide") == [f * 3 // 2 for f in default]
    assert filters("large") == [f * 5 // 2 for f in default]
    assert build_model(task, "wide").count_params() > 2 * build_model(task, "default").count_params()


def test_evaluate_prints_one_json_line_and_can_write_the_card(tmp_path, capsys):
    data = small_utk_tar(tmp_path, {"train": 0, "val": 10, "test": 50})
    for task, metric in (("age", "mae"), ("gender", "accuracy")):
        model = tmp_path / f"{task}.keras"
        shutil.copy(SHIPPED_MODELS_DIR / f"{task}.keras", model)
        shutil.copy(SHIPPED_MODELS_DIR / f"{task}.json", tmp_path / f"{task}.json")
        assert main(["evaluate", "--task", task, "--model", str(model), "--data", str(data)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1
        line = json.loads(lines[0])
        assert line["split"] == "test" and line["n"] == 50 and 0 <= line[metric] < (30 if metric == "mae" else 1.0001)
        assert main(["evaluate", "--task", task, "--model", str(model), "--data", str(data), "--split", "val",
                     "--write-card"]) == 0
        assert json.loads(capsys.readouterr().out)["split"] == "val"
        card = json.loads((tmp_path / f"{task}.json").read_text())
        assert card["metrics"]["split"] == "val" and card["metrics"]["n"] == 10
        assert card["dataset"]["report_split"] == "val" and card["dataset"]["evaluated_on"] == data.name
        assert set(card["metrics_by_group"]) >= {"gender", "race", "age_band", "face_box"}
        assert sum(g["n"] for g in card["metrics_by_group"]["face_box"].values()) == 10
    assert main(["evaluate", "--task", "emotion", "--model", str(tmp_path / "age.keras"), "--data", str(data)]) == 2
    assert "is a model for age, not for emotion" in capsys.readouterr().err


def test_evaluate_emotion_reports_accuracy_and_recall_per_class(tmp_path, capsys):
    data = small_fer_zip(tmp_path, {"PrivateTest": 8})
    assert main(["evaluate", "--task", "emotion", "--model", str(SHIPPED_MODELS_DIR / "emotion.keras"),
                 "--data", str(data)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["n"] == 56 and 0 <= line["accuracy"] <= 1
    assert list(line["per_class_recall"]) == list(EMOTIONS)
    # accuracy is the support-weighted mean of the recalls (8 faces per class here)
    assert line["accuracy"] == pytest.approx(sum(line["per_class_recall"].values()) / 7)


def test_set_margin_changes_the_live_crop_and_records_the_command(tmp_path, capsys):
    from core.models import TaskModel
    from core.registry import read_card

    model = tmp_path / "gender.keras"
    shutil.copy(SHIPPED_MODELS_DIR / "gender.keras", model)
    shutil.copy(SHIPPED_MODELS_DIR / "gender.json", tmp_path / "gender.json")
    before = read_card(model)["preprocess"]["margin"]
    assert main(["set-margin", "--model", str(model), "--margin", "0.3", "--why", "measured"]) == 0
    card = read_card(model)
    assert TaskModel.load(model, card).spec.margin == 0.3
    assert card["preprocess_note"] == "measured" and card["card_edits"][-1]["margin_before"] == before
    assert main(["set-margin", "--model", str(model), "--margin", "1.5", "--why", "x"]) == 2
    assert "between -0.2 and 1" in capsys.readouterr().err and read_card(model)["preprocess"]["margin"] == 0.3
    # set-crop: alignment and the detector the crop is meant for, each edit recorded
    assert main(["set-crop", "--model", str(model), "--align", "on", "--detector", "yunet", "--why", "val"]) == 0
    spec = TaskModel.load(model, read_card(model)).spec
    assert (spec.margin, spec.align, spec.detector) == (0.3, True, "yunet")
    assert read_card(model)["card_edits"][-1]["preprocess_before"]["align"] is False
    assert main(["set-crop", "--model", str(model), "--why", "nothing"]) == 2
    assert "nothing to set" in capsys.readouterr().err


def test_one_options_type_its_argv_parses_back_to_the_same_options(tmp_path):
    """The job manager runs ``TrainOptions.argv()``; the CLI reads it with the same flags."""
    import argparse

    from training.fit import FitConfig
    from training.jobs import TrainOptions as JobOptions
    from training.options import TrainOptions, add_fit_arguments

    assert FitConfig is TrainOptions is JobOptions
    parser = argparse.ArgumentParser()
    add_fit_arguments(parser)
    for options in (TrainOptions("emotion", "fer.zip", out="runs/x"),
                    TrainOptions("age", "utk.tar", arch="compact", epochs=3, batch_size=16, learning_rate=0.001,
                                 augment=False, fraction=0.5, seed=7, out="o", progress="p.jsonl", init="m.keras",
                                 precision="mixed_bfloat16", teachers=("t1.keras", "t2.keras"), distill=0.25,
                                 report_split="val", workers=4, detector="haar", align=True, margin=0.1)):
        assert TrainOptions.from_args(parser.parse_args(options.argv())) == options
    resolved = TrainOptions("gender", "utk.tar", out="o", progress="p", workers=3).resolved()
    assert resolved.command() == ("python -m training fit --task gender --data utk.tar --arch default --epochs 24 "
                                  "--batch-size 64 --lr 0.002 --fraction 1.0 --seed 0 --out o")


def test_job_records_of_the_previous_version_still_load(tmp_path):
    from training.jobs import Job

    old = {"id": "emotion-1", "dir": str(tmp_path), "state": "succeeded", "created": "2024-01-01T00:00:00+00:00",
           "options": {"task": "emotion", "data": "/d/fer.zip", "arch": None, "epochs": 10, "batch_size": 64,
                       "lr": 0.002, "augment": True, "fraction": 1.0, "seed": 0, "precision": "float32"}}
    job = Job.from_dict(old)
    assert (job.options.arch, job.options.learning_rate, job.options.epochs) == ("default", 0.002, 10)
    assert Job.from_dict(job.to_dict()) == job
