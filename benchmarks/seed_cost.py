"""What the seed design's recipe would cost on this machine: ``python -m benchmarks.seed_cost``.

Times a few real training steps of each ``seed`` network at its recipe's batch size,
in float32 and in mixed bfloat16 precision (``fit --precision``), and projects the time
of the full recipe (epochs x training-set size).
"""
import core  # noqa: F401  (first: safe native-library import order)

import time

import keras
import numpy as np

from training import task_heads
from training.builders import PRECISIONS, build_model, input_spec, recipe
from training.fit import FitConfig, compile_model

TRAIN_SIZES = {"emotion": 28709, "age": 19019, "gender": 19019}


def main(steps: int = 8) -> None:
    print(f"{'task':<8}{'precision':>16}{'params':>11}{'s/step':>9}{'epochs':>8}{'projected hours':>17}")
    for task in ("emotion", "age", "gender"):
        for precision in PRECISIONS:
            keras.mixed_precision.set_global_policy(precision)
            _time_task(task, precision, steps)
    keras.mixed_precision.set_global_policy("float32")


def _time_task(task: str, precision: str, steps: int) -> None:
    """One recipe step of the ``seed`` network for ``task`` under the active precision policy."""
    base = recipe(task, "seed")
    spec = input_spec(task, "seed")
    model = build_model(task, "seed", spec)
    cfg = FitConfig(task, "-", "seed", base.epochs, base.batch_size, base.learning_rate).resolved()
    compile_model(model, task, cfg, 100)
    x = np.random.default_rng(0).integers(0, 256, (base.batch_size, *spec.input_shape), dtype=np.uint8)
    y = task_heads.targets(task, np.zeros(base.batch_size))
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    per_step = (time.perf_counter() - start) / steps
    hours = per_step * np.ceil(TRAIN_SIZES[task] / base.batch_size) * base.epochs / 3600
    print(f"{task:<8}{precision:>16}{model.count_params():>11,}{per_step:>9.3f}{base.epochs:>8}{hours:>17.1f}")


if __name__ == "__main__":
    main()
