"""Evaluation on a held-out split, through the same ``TaskModel`` path the app uses."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core import tasks
from core.models import TaskModel
from core.tasks import GENDERS, PROBABILITIES
from training.data import RACES, FaceDataset

AGE_BANDS = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 200)]


def predict(model: TaskModel, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([model.predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def _metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    return tasks.get(task).score(y_true, y_pred)


def decide(task: str, raw: np.ndarray) -> np.ndarray:
    """The answer a model's raw output gives: a class index (emotion), 1 for female (gender), years (age)."""
    return tasks.get(task).decide(raw)


def headline(task: str, y_true: np.ndarray, raw: np.ndarray) -> float:
    """The task's headline figure (accuracy, or MAE for age) of raw outputs."""
    return tasks.get(task).headline(y_true, raw)


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> tuple[dict, list]:
    k = len(names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y_true.astype(int), y_pred.astype(int)), 1)
    per_class = {}
    for i, name in enumerate(names):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(support)}
    return per_class, confusion.tolist()


def _by_group(task: str, groups: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    out: dict[str, dict] = {"gender": {}, "race": {}, "age_band": {}}
    for i, name in enumerate(GENDERS):
        mask = groups["gender"].to_numpy() == i
        if mask.any():
            out["gender"][name] = _metrics(task, y_true[mask], y_pred[mask])
    race = groups["race"].to_numpy()
    for i, name in [*enumerate(RACES), (-1, "unknown")]:
        mask = race == i
        if mask.any():
            out["race"][name] = _metrics(task, y_true[mask], y_pred[mask])
    ages = groups["age"].to_numpy()
    for lo, hi in AGE_BANDS:
        mask = (ages >= lo) & (ages < hi)
        if mask.any():
            out["age_band"][f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+"] = _metrics(task, y_true[mask], y_pred[mask])
    if "detected" in groups:
        # faces the detector found are cut out as the live app cuts them; the rest at the median box:
        # equal figures mean the fallback crop does not matter
        found = groups["detected"].to_numpy().astype(bool)
        out["face_box"] = {name: _metrics(task, y_true[mask], y_pred[mask])
                           for name, mask in (("detector", found), ("median box (none found)", ~found)) if mask.any()}
    return out


def evaluate(model: TaskModel, data: FaceDataset) -> dict:
    """Metrics and the details users need to judge a model (see the Training page)."""
    raw = predict(model, data.x)
    y_true = data.y
    y_pred = decide(data.task, raw)
    result = {"task": data.task, "split": data.split, "n": int(len(y_true)),
              "metrics": _metrics(data.task, y_true, y_pred), "class_names": data.class_names}
    info = tasks.get(data.task)
    if info.class_names:  # a classifier: per class figures and the confusion matrix
        result["per_class"], result["confusion"] = _per_class(y_true, y_pred, data.class_names)
    if info.output == PROBABILITIES:  # many classes: their recalls join the headline figures
        result["metrics"]["per_class_recall"] = {k: v["recall"] for k, v in result["per_class"].items()}
    if data.groups is not None:
        result["by_group"] = _by_group(data.task, data.groups, y_true, y_pred)
    result["y_true"] = np.round(y_true.astype(float), 3).tolist()
    # the class for a softmax, else the raw output (years, the probability of female)
    result["y_pred"] = np.round(y_pred if info.output == PROBABILITIES else raw, 3).astype(float).tolist()
    return result


def summary_line(details: dict) -> dict:
    """The one-line JSON the CLI prints: n and the headline metrics."""
    line = {"task": details["task"], "split": details["split"], "n": details["n"]}
    line.update({k: v for k, v in details["metrics"].items() if k != "n"})
    return line
