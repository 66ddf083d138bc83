"""The three tasks and every fact that differs between them, in one place.

A :class:`Task` says what a task's network outputs and how that output becomes an
answer (the decision rule), which figure judges it and in which direction, how its
faces are cut by default (:class:`FaceSpec`), which data set it trains on and which
uploads that data set comes as. Code elsewhere asks the task (``tasks.get(name)``)
instead of comparing task names, so a fact is written once. Keras details (heads,
losses, training recipes) live in :mod:`training.task_heads`, which builds on this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import EMOTIONS, TASKS
from core.preprocess import FaceSpec

__all__ = ["DATA_KINDS", "EMOTIONS", "FEMALE_THRESHOLD", "GENDERS", "PROBABILITIES", "PROBABILITY", "REGRESSION",
           "TASKS", "DataKind", "Task", "gender_of", "get"]

# Gender labels in the order UTKFace names number them (0 male, 1 female): a gender model
# outputs the probability of index 1, "female".
GENDERS = ("male", "female")
FEMALE_THRESHOLD = 0.5  # a gender probability at or above it reads as female


def gender_of(p_female: float | None) -> str | None:
    """``"female"`` or ``"male"`` from P(female) (None when not measured): the one decision rule."""
    return None if p_female is None else GENDERS[int(p_female >= FEMALE_THRESHOLD)]

# What a network's output is (``Task.output``)
PROBABILITIES = "probabilities"  # softmax over class_names: the answer is the most likely class
PROBABILITY = "probability"      # sigmoid: the probability of class_names[1], decided at a threshold
REGRESSION = "regression"        # a number (years): the answer is the output itself


@dataclass(frozen=True)
class DataKind:
    """A training data set family: its labels, its upload forms and how the page describes it."""

    name: str                               # "fer" | "utk" (also stored in packs)
    title: str                              # the data set's name for messages
    class_names: tuple[str, ...]            # what its class counts are counted over
    upload_suffixes: tuple[str, ...]        # what the data readers accept as uploads
    hint: str                               # the page's one-line description of the accepted forms
    detects_faces: bool                     # a first look runs the face detector over every image
    layout: str                             # the expected layout, for "no labelled images" errors
    count_title: str                        # title of the class-count chart


DATA_KINDS = {
    "fer": DataKind("fer", "FER2013", EMOTIONS, (".csv", ".zip"),
                    "FER2013 as the Kaggle CSV (emotion,pixels,Usage) or the image-folder layout "
                    "(<split>/<emotion>/<file>.jpg) as a folder or .zip.",
                    detects_faces=False, layout="(expected <split>/<emotion>/<name>.jpg)",
                    count_title="Images per emotion"),
    "utk": DataKind("utk", "UTKFace", GENDERS, (".zip", ".tar", ".tar.gz", ".tgz"),
                    "UTKFace as a folder, .zip, .tar or .tar.gz; labels come from names like 25_0_1_….jpg.",
                    detects_faces=True, layout="(expected files named age_gender_race_date.jpg)",
                    count_title="Images per gender"),
}


@dataclass(frozen=True)
class Task:
    """One task's facts; see the module docstring."""

    name: str
    title: str                      # for choosers: "Emotion (7 classes)"
    output: str                     # PROBABILITIES | PROBABILITY | REGRESSION
    class_names: tuple[str, ...]    # class order of the output (empty for a regression)
    output_text: str                # what a card's "output" says
    metric: str                     # the headline figure: "accuracy" | "mae"
    lower_is_better: bool
    default_spec: FaceSpec          # how its faces are cut unless an architecture says otherwise
    data_kind: str                  # key of DATA_KINDS
    label_column: int = 0           # column of the label in the loaders' label table (UTKFace: age, gender)
    stable: bool = False            # a person's own attribute, constant while they stay in view (re-estimated
    #                                 on a schedule, not every frame: core.analyzer.AttributeSchedule)

    @property
    def data(self) -> DataKind:
        return DATA_KINDS[self.data_kind]

    @property
    def upload_suffixes(self) -> tuple[str, ...]:
        return self.data.upload_suffixes

    @property
    def monitor(self) -> str:
        """The Keras log key that picks the best epoch."""
        return f"val_{self.metric}"

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: which way :attr:`monitor` improves."""
        return "min" if self.lower_is_better else "max"

    @property
    def n_outputs(self) -> int:
        return len(self.class_names) if self.output == PROBABILITIES else 1

    def decide(self, raw: np.ndarray) -> np.ndarray:
        """The answer raw outputs give: a class index (probabilities), 1 for class_names[1]
        (probability), the number itself (regression)."""
        raw = np.asarray(raw)
        if self.output == PROBABILITIES:
            return raw.argmax(axis=1)
        if self.output == PROBABILITY:
            return (raw >= FEMALE_THRESHOLD).astype(np.float32)
        return raw.astype(np.float32)

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
        """``{metric: value, "n": count}`` of decided answers against the labels."""
        if self.metric == "mae":
            return {"mae": float(np.mean(np.abs(y_pred - y_true))), "n": int(len(y_true))}
        return {"accuracy": float(np.mean(y_pred == y_true)), "n": int(len(y_true))}

    def headline(self, y_true: np.ndarray, raw: np.ndarray) -> float:
        """The headline figure of raw outputs."""
        return self.score(y_true, self.decide(raw))[self.metric]

    def metric_text(self, value: float) -> str:
        """The headline figure as the app shows it: ``acc 0.703`` or ``MAE 4.81 y``."""
        return f"MAE {value:.2f} y" if self.metric == "mae" else f"acc {value:.3f}"

    @property
    def metric_title(self) -> str:
        return "MAE (years)" if self.metric == "mae" else "accuracy"

    def sort_key(self, value: float) -> float:
        """Sorting by it puts the best value first."""
        return value if self.lower_is_better else -value

    def better(self, value: float, than: float) -> bool:
        return value < than if self.lower_is_better else value > than

    def best(self, values) -> float:
        return min(values) if self.lower_is_better else max(values)

    def empty_output(self) -> np.ndarray:
        """What ``predict`` returns for no faces."""
        return np.zeros((0, self.n_outputs) if self.output == PROBABILITIES else (0,), dtype=np.float32)

    def shape_output(self, out: np.ndarray) -> np.ndarray:
        """A network's batch output as the app uses it: (n, classes) probabilities or (n,) numbers."""
        return out if self.output == PROBABILITIES else out.reshape(-1)


_TASKS = {t.name: t for t in (
    # FER2013 frames faces wider than the detector's box: the live crop is grown by the card's
    # margin (chosen on PublicTest by ``python -m benchmarks.crop_margin``); training images are used whole
    Task("emotion", "Emotion (7 classes)", PROBABILITIES, EMOTIONS, "softmax over class_names", "accuracy", False,
         FaceSpec(size=48, channels=1, margin=0.12), "fer"),
    Task("age", "Age (years)", REGRESSION, (), "years", "mae", True,
         FaceSpec(size=64, channels=3, margin=0.2), "utk", label_column=0, stable=True),
    Task("gender", "Gender", PROBABILITY, GENDERS, "probability of female", "accuracy", False,
         FaceSpec(size=64, channels=3, margin=0.2), "utk", label_column=1, stable=True),
)}
assert tuple(_TASKS) == TASKS, "core.config.TASKS and the task table must agree"


STABLE_TASKS = tuple(name for name, task in _TASKS.items() if task.stable)  # age and gender


def get(name: str) -> Task:
    """The task called ``name``; ValueError for an unknown one."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; expected {', '.join(TASKS[:-1])} or {TASKS[-1]}") from None
