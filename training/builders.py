"""One model builder for all three tasks: ``build_model(task, arch)``.

Architectures:
* ``default``: a VGG-style CNN with batch norm and global average pooling, sized
  per task so that all three networks together stay real-time on a 2-core CPU.
* ``compact``: the same design at half width, for quick runs and slow machines.
* ``wide``: the same design at 1.5x width (about 2.2x the parameters and compute), for
  tasks where ``default`` underfits (gender: training accuracy barely above validation).
* ``large``: 2.5x width, a teacher for distillation (``fit --teacher``) rather than a live model.
* ``seed``: the project's seed-design networks, layer for layer (48x48x3 input, plain
  Conv2D stacks, Dense(1024)/Dense(512) heads) with its optimizer, losses, batch and
  epochs; ``fit`` adds what it adds to every architecture (docs/training.md section 6).

Every network takes ``uint8`` faces (the output of ``core.preprocess``) and scales
them itself, so inference never has to remember how training normalised pixels.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
from keras import layers

from core import tasks
from core.config import TASKS
from core.preprocess import FaceSpec
from training.task_heads import DEFAULT_AGE_BIAS, head, training_facts

ARCHITECTURES = {
    "default": "VGG-style CNN with batch norm, sized per task for real-time CPU inference (recommended)",
    "compact": "the default design at half width: faster to train and run, a little less accurate",
    "wide": "the default design at 1.5x width: about 2.2x the compute, for tasks where default underfits",
    "large": "the default design at 2.5x width: about 6x the compute; too slow for live use on a CPU, "
             "meant as a teacher to distil from (fit --teacher), trained on a GPU",
    "seed": "the seed design's networks (128-filter conv stacks, dense 1024 head), layer for layer",
}

# Keras dtype policies a run can train under (``fit --precision``)
PRECISIONS = {
    "float32": "float32 throughout",
    "mixed_bfloat16": "bfloat16 compute with float32 weights and outputs: about 1.8x faster training on CPUs "
                      "with AVX512-BF16 (measured on this project's AMD EPYC for the seed age network)",
}


@functools.cache
def cpu_has_bfloat16() -> bool:
    """True where the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX; Linux only),
    i.e. where ``mixed_bfloat16`` speeds training up."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Recipe:
    """How an architecture is trained by default (the CLI can override each field)."""

    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str  # "adam" (constant rate) or "adamw-cosine"


def input_spec(task: str, arch: str) -> FaceSpec:
    """The face preprocessing each (task, architecture) is trained with."""
    spec = tasks.get(task).default_spec
    if arch == "seed":  # 48x48 colour inputs for all three tasks; emotion faces re-cropped by the detector
        return FaceSpec(size=48, channels=3, margin=spec.margin, recrop=training_facts(task).seed_recrop)
    return spec


def recipe(task: str, arch: str) -> Recipe:
    facts = training_facts(task)
    if arch == "seed":
        return Recipe(epochs=facts.seed_epochs, batch_size=32, learning_rate=1e-4, optimizer="adam")
    return Recipe(epochs=facts.epochs, batch_size=64, learning_rate=2e-3, optimizer="adamw-cosine")


def _conv_bn(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _vgg_body(x, width: int, dropout: float):
    for mult in (1, 2, 4):
        x = _conv_bn(x, width * mult)
        x = _conv_bn(x, width * mult)
        x = layers.MaxPooling2D()(x)
        x = layers.SpatialDropout2D(0.1)(x)
    x = _conv_bn(x, width * 8)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(width * 8, activation="relu")(x)


def _seed_body(task: str, x):
    if training_facts(task).seed_body == "narrow":
        for filters in (36, 64, 128):
            x = layers.Conv2D(filters, 3, activation="relu")(x)
            x = layers.MaxPooling2D(3, strides=2)(x)
        width = 512
    else:
        for _ in range(2):
            for _ in range(3):
                x = layers.Conv2D(128, 3, activation="relu")(x)
            x = layers.MaxPooling2D(3, strides=2)(x)
        width = 1024
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(width, activation="relu")(x)
    return layers.Dense(width, activation="relu")(x)


TASK_WIDTH = {task: training_facts(task).width for task in TASKS}
WIDTH_FACTOR = {"default": 1.0, "compact": 0.5, "wide": 1.5, "large": 2.5}


def build_model(task: str, arch: str = "default", spec: FaceSpec | None = None,
                age_bias: float = DEFAULT_AGE_BIAS) -> keras.Model:
    """Build an uncompiled network for ``task`` ("emotion", "age", "gender")."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    spec = spec or input_spec(task, arch)
    inputs = keras.Input(spec.input_shape, dtype="uint8", name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    if arch == "seed":
        x = _seed_body(task, x)
    else:
        width = int(TASK_WIDTH[task] * WIDTH_FACTOR[arch])
        x = _vgg_body(x, width, dropout=training_facts(task).dropout)
    return keras.Model(inputs, head(task, x, age_bias), name=f"{task}_{arch}")


def build_ensemble(members: list[keras.Model], flip: bool = True, name: str = "ensemble") -> keras.Model:
    """One network that averages ``members`` (same task and input), each on the face and,
    with ``flip``, on its mirror image.

    Averaging trained snapshots and mirrored views is the cheapest accuracy a CPU
    can buy after training; packing it into one Keras model keeps training-time
    evaluation and live inference the same computation.
    """
    from core.layers import HorizontalFlip

    if not members:
        raise ValueError("an ensemble needs at least one member model")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members take different inputs: {sorted(shapes)}")
    inputs = keras.Input(shapes.pop(), dtype="uint8", name="face")
    views = [inputs, HorizontalFlip(name="mirror")(inputs)] if flip else [inputs]
    outputs = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"  # unique layer names inside the combined model
        outputs += [member(view) for view in views]
    output = outputs[0] if len(outputs) == 1 else layers.Average(name="average")(outputs)
    return keras.Model(inputs, output, name=name)
