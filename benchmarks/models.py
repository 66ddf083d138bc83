"""Per-model CPU inference latency: ``python -m benchmarks.models [--calls 200] [--models FILE ...]``.

Live use runs the emotion network on every face of every frame and the age and gender
networks on each face every ``LIVE_ATTRIBUTE_EVERY`` analysed frames (files: every
``OFFLINE_ATTRIBUTE_EVERY``), so each must be cheap at batch 1 (one face) and batch 4 (a
small group). The last two columns spread each batch-1 median over the frames it serves on
the Live page and in files: what one face costs per frame there. Runtimes
(``core.models.TaskModel``): the Keras model inside a ``tf.function`` (what training
evaluates) and the same graph frozen in a session of its own (``freeze``: all of the app's
analysis, Live, files and batches), each timed end to end from a uint8 numpy batch to a numpy
result, on one TensorFlow thread as the Live page runs them (``--threads 0`` keeps
TensorFlow's default pool). Loading is timed three ways: traced, frozen the first time (the
graph frozen, optimized and written to a fresh graph cache, core/graph_cache.py) and frozen
from that cache, as every later process loads it. Last, what the Live page does: emotion on three
faces on one thread while another re-estimates age and gender on one face back to back, for
each runtime.
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from core.analyzer import STABLE_TASKS, limit_inference_threads
from core.config import TASKS
from core.live_session import LIVE_ATTRIBUTE_EVERY
from core.models import TaskModel
from core.registry import ModelRegistry, read_card
from core.video_analysis import OFFLINE_ATTRIBUTE_EVERY


def time_calls(model: TaskModel, batch: int, calls: int, warmup: int = 20) -> np.ndarray:
    x = np.random.default_rng(0).integers(0, 256, (batch, *model.spec.input_shape), dtype=np.uint8)
    for _ in range(warmup):
        model.predict(x)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        model.predict(x)
        times[i] = time.perf_counter() - start
    return times * 1e3


def side_by_side(emotion: TaskModel, attributes: list[TaskModel], seconds: float = 3.0) -> tuple[float, float]:
    """Emotion's median ms for 3 faces here while another thread runs ``attributes`` on one
    face back to back, and that thread's re-estimates per second."""
    faces = np.random.default_rng(0).integers(0, 256, (3, *emotion.spec.input_shape), dtype=np.uint8)
    face = {m.task: faces[:1] if m.spec == emotion.spec else
            np.random.default_rng(1).integers(0, 256, (1, *m.spec.input_shape), dtype=np.uint8) for m in attributes}
    stop, jobs = threading.Event(), [0]

    def re_estimate() -> None:
        while not stop.is_set():
            for model in attributes:
                model.predict(face[model.task])
            jobs[0] += 1

    time_calls(emotion, 3, 5, warmup=5)
    worker = threading.Thread(target=re_estimate)
    worker.start()
    start, times = time.perf_counter(), []
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        emotion.predict(faces)
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.004)  # the rest of a frame's work
    stop.set()
    worker.join()
    return float(np.median(times)), jobs[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--models", nargs="+", metavar="FILE",
                        help="time these model.keras files (cards beside them) instead of the active models")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow threads per op, as the Live page sets them (0: TensorFlow's default)")
    args = parser.parse_args()
    limited = limit_inference_threads(args.threads) if args.threads > 0 else False
    import keras

    registry = ModelRegistry()
    backend = keras.backend.backend()
    runtime = "traced = tf.function over the Keras model, frozen = that graph frozen in its own session" \
        if backend == "tensorflow" else "Keras predict_on_batch"
    print(f"runtime: keras {keras.__version__} ({backend}), {runtime}; "
          f"{'%d TensorFlow thread(s) per op' % args.threads if limited else 'default thread pool'}; "
          f"{os.cpu_count()} CPU cores; {args.calls} calls after 20 warm-up calls")
    print("why: it runs the trained model itself (no conversion to another format that could drift from "
          "what was evaluated; docs/benchmarks.md)")
    kinds = (("traced", False), ("frozen", True))
    os.environ["FACESENSE_GRAPH_CACHE"] = tempfile.mkdtemp(prefix="facesense-bench-graphs-")  # a cold cache
    loads: dict[str, float] = {"traced": 0.0, "frozen first time": 0.0, "frozen from the cache": 0.0}

    def load(kind: str, freeze: bool, path: Path | None = None, task: str = "") -> TaskModel:
        start = time.perf_counter()
        model = TaskModel.load(path, read_card(path), freeze=freeze) if path else \
            TaskModel.from_entry(registry.active(task), freeze)
        model.predict(np.zeros((1, *model.spec.input_shape), np.uint8))  # a traced graph is traced here
        loads[kind] += time.perf_counter() - start
        return model

    def load_twice(kind: str, freeze: bool, path: Path | None = None, task: str = "") -> TaskModel:
        if not freeze:
            return load(kind, freeze, path, task)
        load("frozen first time", True, path, task)
        return load("frozen from the cache", True, path, task)

    if args.models:
        models = [(f"{p} {kind}", load_twice(kind, freeze, Path(p))) for p in args.models for kind, freeze in kinds]
    else:
        load("traced", False, task=TASKS[0])  # TensorFlow's import and start-up: not any runtime's cost
        loads["traced"] = 0.0
        models = [(f"{task} {kind}", load_twice(kind, freeze, task=task)) for task in TASKS for kind, freeze in kinds]
        print("models: " + ", ".join(f"{task} {registry.active(task).id}" for task in TASKS))
    print("loading and first call, all models: "
          + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in loads.items()))
    width = max(16, *(len(name) + 1 for name, _ in models))
    print(f"{'model':<{width}}{'params':>9}{'input':>12}  {'b1 median':>10}{'b1 p95':>9}  "
          f"{'b4 median':>10}{'b4 p95':>9}"
          f"  {'per face-frame':>15}{'in files':>9}  (ms; age and gender run on a face every "
          f"{LIVE_ATTRIBUTE_EVERY} frames on the Live page, every {OFFLINE_ATTRIBUTE_EVERY} in files)")
    for name, model in models:
        row = []
        for batch in (1, 4):
            t = time_calls(model, batch, args.calls)
            row += [np.median(t), np.percentile(t, 95)]
        shape = "x".join(map(str, model.spec.input_shape))
        stable = model.task in STABLE_TASKS
        live, files = (row[0] / (every if stable else 1) for every in (LIVE_ATTRIBUTE_EVERY, OFFLINE_ATTRIBUTE_EVERY))
        print(f"{name:<{width}}{model.card.params or 0:>9}{shape:>12}  {row[0]:>10.2f}{row[1]:>9.2f}  "
              f"{row[2]:>10.2f}{row[3]:>9.2f}  {live:>15.2f}{files:>9.2f}")
    if args.models:
        return
    print("emotion on 3 faces while another thread re-estimates age and gender on one face back to back:")
    for kind, _ in kinds:
        chosen = {m.task: m for name, m in models if name.endswith(kind)}
        ms, rate = side_by_side(chosen["emotion"], [chosen[t] for t in STABLE_TASKS if t in chosen])
        print(f"  {kind}: emotion median {ms:.2f} ms, {rate:.1f} re-estimates/s beside it")


if __name__ == "__main__":
    main()
