"""The task table: one home for each task's facts, and the training side built on it."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import ast
from pathlib import Path

import numpy as np
import pytest

from core import tasks
from core.config import EMOTIONS, TASKS
from core.preprocess import FaceSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_table_covers_every_task_in_order():
    assert tuple(tasks.get(t).name for t in TASKS) == TASKS
    with pytest.raises(ValueError, match="unknown task 'height'"):
        tasks.get("height")


def test_facts_per_task():
    emotion, age, gender = (tasks.get(t) for t in TASKS)
    assert (emotion.metric, emotion.lower_is_better, emotion.monitor, emotion.mode) == \
        ("accuracy", False, "val_accuracy", "max")
    assert (age.metric, age.lower_is_better, age.monitor, age.mode) == ("mae", True, "val_mae", "min")
    assert (gender.metric, gender.mode) == ("accuracy", "max")
    assert emotion.class_names == EMOTIONS and age.class_names == () and gender.class_names == ("male", "female")
    assert tasks.GENDERS[1] == "female", "a gender model outputs the probability of index 1"
    assert (emotion.data_kind, age.data_kind, gender.data_kind) == ("fer", "utk", "utk")
    assert emotion.upload_suffixes == (".csv", ".zip") and age.upload_suffixes == gender.upload_suffixes
    assert emotion.default_spec == FaceSpec(size=48, channels=1, margin=0.12)
    assert age.default_spec == gender.default_spec == FaceSpec(size=64, channels=3, margin=0.2)
    assert [t.output_text for t in (emotion, age, gender)] == ["softmax over class_names", "years",
                                                               "probability of female"]


def test_decision_rules_scores_and_ordering():
    emotion, age, gender = (tasks.get(t) for t in TASKS)
    probs = np.eye(7, dtype=np.float32)[[3, 0]]
    assert emotion.decide(probs).tolist() == [3, 0]
    assert gender.decide(np.array([0.49, 0.5, 0.9])).tolist() == [0.0, 1.0, 1.0]
    assert age.decide(np.array([30.5])).tolist() == [30.5]
    assert age.score(np.array([30.0, 40.0]), np.array([32.0, 36.0])) == {"mae": 3.0, "n": 2}
    assert emotion.headline(np.array([3, 1]), probs) == 0.5
    assert sorted([4.0, 6.0, 5.0], key=age.sort_key) == [4.0, 5.0, 6.0]
    assert sorted([0.4, 0.6], key=gender.sort_key) == [0.6, 0.4]
    assert age.better(4.0, 5.0) and gender.better(0.9, 0.8) and age.best([5, 4]) == 4
    assert emotion.empty_output().shape == (0, 7) and age.empty_output().shape == (0,)
    assert gender.shape_output(np.zeros((3, 1))).shape == (3,)


def test_training_side_heads_losses_and_targets():
    import keras

    from training import task_heads
    from training.builders import TASK_WIDTH, recipe

    assert task_heads.metrics("age") == ["mae"] and task_heads.metrics("emotion") == ["accuracy"]
    assert task_heads.loss("age", "seed") == "mse" and isinstance(task_heads.loss("age", "default"), keras.losses.Huber)
    assert task_heads.loss("gender", "default") == "binary_crossentropy"
    assert task_heads.targets("emotion", np.array([2])).tolist() == [[0, 0, 1, 0, 0, 0, 0]]
    assert task_heads.targets("age", np.array([30])).shape == (1, 1)
    assert task_heads.initial_bias("age", np.array([20.0, 40.0])) == 30.0
    assert TASK_WIDTH == {"emotion": 24, "age": 24, "gender": 16}
    assert [recipe(t, "default").epochs for t in TASKS] == [35, 30, 24]
    assert [recipe(t, "seed").epochs for t in TASKS] == [50, 50, 100]


def _literal_task_comparisons(path: Path) -> list[int]:
    """Lines comparing something with a task name literal (``x == "age"``, ``x in ("age", ...)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                names = [part] if isinstance(part, ast.Constant) else getattr(part, "elts", [])
                if any(isinstance(n, ast.Constant) and n.value in TASKS for n in names):
                    lines.append(node.lineno)
    return lines


def test_no_literal_task_comparisons_remain_outside_the_task_module():
    """Only where tasks truly behave differently: the analyzer's FaceResult takes emotion per
    frame and age and gender per person (``"age" in outputs``, four comparisons)."""
    folders = ("core", "training", "pages", "benchmarks")
    files = [path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py")]
    files = [f for f in [*files, REPO_ROOT / "app.py"] if f != REPO_ROOT / "core" / "tasks.py"]
    found = {str(f.relative_to(REPO_ROOT)): lines for f in sorted(files) if (lines := _literal_task_comparisons(f))}
    assert set(found) <= {"core/analyzer.py"} and len(found.get("core/analyzer.py", [])) <= 4, found
