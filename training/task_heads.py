"""The training side of each task: its output layer, loss, metrics, targets and recipe sizes.

:mod:`core.tasks` holds what the app needs to know about a task (outputs, decision rule,
headline metric); this module adds what only training needs and Keras provides. The head,
loss and targets follow from the task's output kind; :data:`TRAINING` holds the sizes and
recipe figures each task was tuned with.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from core import tasks
from core.tasks import PROBABILITIES, REGRESSION

DEFAULT_AGE_BIAS = 33.0  # a regression head's starting bias where no labels are at hand


@dataclass(frozen=True)
class TaskTraining:
    """How a task's networks are sized and trained by default."""

    width: int          # base convolution width of the default design (times WIDTH_FACTOR per architecture)
    dropout: float      # before the default design's dense layer
    epochs: int         # the default recipe's epochs
    seed_epochs: int    # the seed design's epochs
    seed_body: str      # the seed design's convolution stack: "deep" (2x3 128-filter convs) or "narrow"
    seed_recrop: bool   # the seed design re-crops this task's training faces with the detector
    shift: float        # augmentation: the largest shift, as a share of the face size


TRAINING = {
    "emotion": TaskTraining(width=24, dropout=0.5, epochs=35, seed_epochs=50, seed_body="deep", seed_recrop=True,
                            shift=0.08),
    "age": TaskTraining(width=24, dropout=0.3, epochs=30, seed_epochs=50, seed_body="deep", seed_recrop=False,
                        shift=0.05),
    "gender": TaskTraining(width=16, dropout=0.3, epochs=24, seed_epochs=100, seed_body="narrow", seed_recrop=False,
                           shift=0.05),
}


def training_facts(task: str) -> TaskTraining:
    tasks.get(task)  # the ValueError for an unknown task
    return TRAINING[task]


def head(task: str, x, age_bias: float = DEFAULT_AGE_BIAS):
    """The output layer, named after the task."""
    info = tasks.get(task)
    # float32 even under a mixed-precision policy: bfloat16 resolves ages only to 0.25 years
    # near 40 and saturates softmax/sigmoid outputs
    if info.output == PROBABILITIES:
        return layers.Dense(info.n_outputs, activation="softmax", name=task, dtype="float32")(x)
    if info.output == REGRESSION:
        return layers.Dense(1, name=task, bias_initializer=keras.initializers.Constant(age_bias), dtype="float32")(x)
    return layers.Dense(1, activation="sigmoid", name=task, dtype="float32")(x)


def initial_bias(task: str, y: np.ndarray) -> float:
    """A regression head starts at the mean label (the first epochs then learn faces, not the offset)."""
    return float(np.mean(y)) if tasks.get(task).output == REGRESSION else DEFAULT_AGE_BIAS


def loss(task: str, arch: str):
    """The training loss; the seed design keeps its own (mean squared error for a regression)."""
    output = tasks.get(task).output
    if output == PROBABILITIES:
        return keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    if output == REGRESSION:
        return "mse" if arch == "seed" else keras.losses.Huber(delta=5.0)
    return "binary_crossentropy"  # PROBABILITY


def metrics(task: str) -> list[str]:
    """The Keras metrics: the task's headline figure (``val_<metric>`` picks the best epoch)."""
    return [tasks.get(task).metric]


def targets(task: str, y: np.ndarray) -> np.ndarray:
    """Training targets from labels: one-hot rows for a softmax, a float column otherwise."""
    info = tasks.get(task)
    if info.output == PROBABILITIES:
        return keras.utils.to_categorical(y, info.n_outputs).astype(np.float32)
    return y.astype(np.float32).reshape(-1, 1)
