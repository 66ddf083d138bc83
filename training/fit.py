"""Fitting a task model end to end: load, build, train, keep the best epoch, evaluate, save.

Nothing is written to the output folder's ``model.keras`` until training and the
evaluation finished; the file appears by an atomic rename, so a failed or
cancelled run never leaves a model that could be registered or activated.

A run with an output folder backs its state up after every epoch (weights,
optimizer, epoch, best epoch so far) in ``<out>/.resume``; running the same command
again continues an interrupted run where it stopped instead of starting over, which
is what makes hours-long CPU recipes practical.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from core import tasks
from core.card import ModelCard, ModelFolder, load_card, teacher_record, training_runs, write_json_atomic
from core.models import TaskModel
from training import RESUME_DIR
from training import task_heads
from training.augment import FaceBatches
from training.builders import PRECISIONS, build_model, input_spec, recipe
from training.data import FaceDataset, face_detector_record, load_dataset
from training.evaluate import evaluate, summary_line
from training.options import TrainOptions

log = logging.getLogger(__name__)
MONITOR = {task: tasks.get(task).monitor for task in tasks.TASKS}  # the Keras log key that picks the best epoch
FitConfig = TrainOptions  # the name fit has always used for its options (one type: training.options)


@dataclass
class FitResult:
    model: keras.Model
    history: dict
    card: ModelCard
    evaluation: dict
    model_path: Path | None = None


class ProgressFile(keras.callbacks.Callback):
    """Appends JSON lines (start/batch/epoch) for the Training page to follow a run."""

    def __init__(self, path: str | None, epochs: int, steps: int, every_s: float = 0.5) -> None:
        super().__init__()
        self.path, self.epochs, self.steps, self.every_s = path, epochs, steps, every_s
        self._last = 0.0
        self._epoch = 0

    def emit(self, event: str, **fields) -> None:
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"event": event, **fields, "time": time.time()}) + "\n")

    def on_train_begin(self, logs=None) -> None:
        self.emit("start", epochs=self.epochs, steps=self.steps)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None) -> None:
        now = time.time()
        if now - self._last >= self.every_s or batch + 1 == self.steps:
            self._last = now
            self.emit("batch", epoch=self._epoch + 1, step=batch + 1, steps=self.steps,
                      logs={k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.emit("epoch", epoch=epoch + 1, epochs=self.epochs, logs={k: float(v) for k, v in (logs or {}).items()})


class KeepBest(keras.callbacks.Callback):
    """Remember the weights of the best validation epoch and restore them at the end.

    With ``state_dir`` the best epoch is also written to disk, so a resumed run still
    ends on the best epoch even when that epoch ran before the interruption.
    """

    def __init__(self, monitor: str, mode: str, state_dir: Path | None = None) -> None:
        super().__init__()
        self.monitor, self.sign = monitor, (1 if mode == "max" else -1)
        self.best, self.best_epoch, self.weights = -np.inf, 0, None
        self.state_dir = state_dir

    def on_train_begin(self, logs=None) -> None:
        state = self.state_dir / "best.json" if self.state_dir else None
        if state is not None and state.exists():
            saved = json.loads(state.read_text())
            self.best, self.best_epoch = saved["best"], saved["best_epoch"]

    def on_epoch_end(self, epoch, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and self.sign * value > self.best:
            self.best, self.best_epoch, self.weights = self.sign * value, epoch + 1, self.model.get_weights()
            if self.state_dir is not None:
                self.model.save_weights(self.state_dir / "best.weights.h5")
                write_json_atomic(self.state_dir / "best.json", {"best": self.best, "best_epoch": self.best_epoch})

    def on_train_end(self, logs=None) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)
        elif self.state_dir is not None and (self.state_dir / "best.weights.h5").exists():
            self.model.load_weights(self.state_dir / "best.weights.h5")


def resume_state(cfg: FitConfig) -> tuple[Path | None, int, list[int]]:
    """The backup folder of ``cfg``'s run, the epoch it resumes at (0: a fresh run) and earlier resumes.

    A folder left by a different command is refused rather than overwritten: it is
    someone's interrupted run.
    """
    if not cfg.out:
        return None, 0, []
    folder = Path(cfg.out) / RESUME_DIR
    command_file = folder / "command.txt"
    if not command_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        command_file.write_text(cfg.command())
        return folder, 0, []
    previous = command_file.read_text()
    if previous != cfg.command():
        raise ValueError(f"{cfg.out} holds an interrupted run of another command ({previous}); run that command "
                         f"again to resume it, or delete {folder} or choose another --out")
    meta = folder / "training_metadata.json"
    epoch = int(json.loads(meta.read_text())["epoch"]) if meta.exists() else 0
    history_file = folder / "resumed.json"
    resumed = json.loads(history_file.read_text()) if history_file.exists() else []
    if epoch:
        resumed.append(epoch)
        write_json_atomic(history_file, resumed)
        log.info("resuming the interrupted run in %s at epoch %d of %d", cfg.out, epoch + 1, cfg.epochs)
    return folder, epoch, resumed


def compile_model(model: keras.Model, task: str, cfg: FitConfig, steps_per_epoch: int) -> None:
    base = recipe(task, cfg.arch)
    if base.optimizer == "adam":
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
    else:
        total = max(1, cfg.epochs * steps_per_epoch)
        schedule = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate * 0.1, decay_steps=total, warmup_target=cfg.learning_rate,
            warmup_steps=min(steps_per_epoch, total // 10))
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    model.compile(optimizer=optimizer, loss=task_heads.loss(task, cfg.arch), metrics=task_heads.metrics(task))


def soft_targets(task: str, teachers: tuple[str, ...], x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """Training targets blended from the labels and the teachers' mean prediction (each teacher on
    the face and its mirror image): knowledge distillation.

    A small network learns more from a strong ensemble's graded answers (how fearful, how
    old) than from hard labels alone, at no cost at inference time. The teachers see each
    face once, un-augmented; the student's augmented views share that target.
    """
    from core.models import load_keras_model
    from training.builders import build_ensemble

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"--distill must be between 0 and 1, not {weight}")
    labels = task_heads.targets(task, y)
    # the same averaging over models and mirror views that a shipped combined model does
    teacher = build_ensemble([load_keras_model(Path(p)) for p in teachers], flip=True, name="teachers")
    if tuple(teacher.input_shape[1:]) != x.shape[1:]:
        raise ValueError(f"the teachers take {teacher.input_shape[1:]} inputs, not {x.shape[1:]}")
    taught = np.asarray(teacher.predict(x, batch_size=512, verbose=0), np.float32).reshape(labels.shape)
    log.info("distilling from %d teacher(s): weight %.2f on their predictions", len(teachers), weight)
    return ((1.0 - weight) * labels + weight * taught).astype(np.float32)


def _card(cfg: FitConfig, model: keras.Model, spec, train: FaceDataset, details: dict, best_epoch: int) -> ModelCard:
    return ModelCard(
        task=cfg.task, architecture=cfg.arch, input_shape=tuple(spec.input_shape), preprocess=spec,
        class_names=tuple(train.class_names), output=tasks.get(cfg.task).output_text,
        dataset={"source": Path(cfg.data).name, "train_split": "train", "val_split": "val",
                 "report_split": details["split"], "n_train": len(train),
                 "split_names": train.split_source,
                 "fraction": cfg.fraction, "skipped_images": train.skipped},
        options={"epochs": cfg.epochs, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
                 "augment": cfg.augment, "seed": cfg.seed, "precision": cfg.precision,
                 **({"teachers": list(cfg.teachers), "distill": cfg.distill} if cfg.teachers else {})},
        epochs=cfg.epochs, best_epoch=best_epoch, params=int(model.count_params()),
        metrics=summary_line(details), metrics_by_group=details.get("by_group", {}),
        command=cfg.command(),
        keras_version=keras.__version__, backend=keras.backend.backend(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"detector": face_detector_record(cfg.task, spec)},
    )


def _combined_init(path: str | None) -> tuple[keras.Model, ModelCard] | None:
    """A combined model (``python -m training ensemble``) to fine-tune as it is, with its card;
    None for a single network (warm-started into a fresh copy of its design, :func:`_warm_start`)
    or no model at all."""
    from core.models import load_keras_model

    if not path:
        return None
    try:
        card = load_card(Path(path))
    except FileNotFoundError:
        return None
    if "ensemble" not in card.extra:
        return None
    return load_keras_model(Path(path)), card


def _warm_start(model: keras.Model, path: str) -> ModelCard | None:
    """Copy the weights of a trained model of the same design into ``model``; return its card.

    A warm restart (a fresh learning-rate cycle from trained weights) is how a model
    gets more epochs without repeating the ones it already had.
    """
    from core.models import load_keras_model

    source = Path(path)
    trained = load_keras_model(source)
    try:
        model.set_weights(trained.get_weights())
    except ValueError as exc:
        raise ValueError(f"{source} does not match the {model.name} design: {exc}") from exc
    try:
        return load_card(source)
    except FileNotFoundError:  # a model from elsewhere: trainable, only its history is unknown
        return None


def fit(cfg: FitConfig, callbacks: list | tuple = ()) -> FitResult:
    """Train ``cfg.task`` on ``cfg.data``; evaluate on the reporting split; save to ``cfg.out``."""
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r}; choose from {sorted(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(cfg.precision)  # Keras' policy is global: restored below
    try:
        return _fit(cfg.resolved(), callbacks)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit(cfg: FitConfig, callbacks: list | tuple) -> FitResult:
    keras.utils.set_random_seed(cfg.seed)
    spec = replace(input_spec(cfg.task, cfg.arch), detector=cfg.detector,
                   **({"align": cfg.align} if cfg.align is not None else {}),
                   **({"margin": cfg.margin} if cfg.margin is not None else {}))
    train = load_dataset(cfg.task, cfg.data, "train", cfg.fraction, cfg.seed, spec)
    val = load_dataset(cfg.task, cfg.data, "val", cfg.fraction, cfg.seed, spec)
    # loaded now, not after training: data without the reporting split (a pack of train and val)
    # must fail before an hour of epochs, not after
    test = val if cfg.report_split == "val" else load_dataset(cfg.task, cfg.data, cfg.report_split, 1.0, cfg.seed, spec)
    log.info("%s: %d training and %d validation faces", cfg.task, len(train), len(val))
    age_bias = task_heads.initial_bias(cfg.task, train.y)
    combined = _combined_init(cfg.init)
    if combined is not None:  # fine-tune a combined model as a whole (its members and their averaging)
        model, init_card = combined
        if tuple(model.input_shape[1:]) != spec.input_shape:
            raise ValueError(f"{cfg.init} takes {model.input_shape[1:]} inputs, not the {spec.input_shape} "
                             f"faces of {cfg.task}")
    else:
        model = build_model(cfg.task, cfg.arch, spec, age_bias=age_bias)
        # a model from elsewhere (no card) still records that it started from it
        init_card = (_warm_start(model, cfg.init) or ModelCard(cfg.task)) if cfg.init else None
    backup, start_epoch, resumed = resume_state(cfg)
    shift = task_heads.training_facts(cfg.task).shift
    targets = (soft_targets(cfg.task, cfg.teachers, train.x, train.y, cfg.distill) if cfg.teachers
               else task_heads.targets(cfg.task, train.y))
    # a resumed run draws fresh augmentations rather than replaying those of its first epochs
    batches = FaceBatches(train.x, targets, cfg.batch_size, cfg.augment, cfg.seed + start_epoch,
                          shift=shift, workers=cfg.workers, use_multiprocessing=False)
    compile_model(model, cfg.task, cfg, len(batches))
    info = tasks.get(cfg.task)
    keep = KeepBest(info.monitor, info.mode, backup)
    progress = ProgressFile(cfg.progress, cfg.epochs, len(batches))
    state = [keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False)] if backup else []
    history = model.fit(batches, validation_data=(val.x, task_heads.targets(cfg.task, val.y)), epochs=cfg.epochs,
                        callbacks=[keep, *state, progress, *callbacks], verbose=2 if cfg.progress is None else 0)
    progress.emit("evaluate")
    card_stub = ModelCard(cfg.task, preprocess=spec, class_names=tuple(train.class_names))
    details = evaluate(TaskModel(cfg.task, model, card_stub), test)
    card = _card(cfg, model, spec, train, details, keep.best_epoch)
    if combined is not None:
        runs = [*training_runs(init_card), {"command": card.command, "epochs": cfg.epochs}]
        card = card.replace(architecture=init_card.architecture or cfg.arch, ensemble=init_card.extra["ensemble"],
                            training_runs=runs, epochs=sum(int(r.get("epochs") or 0) for r in runs))
    if cfg.teachers:
        card = card.replace(teachers=[{"model": t, **teacher_record(t)} for t in cfg.teachers])
    if init_card is not None:
        card = card.replace(init={"model": cfg.init, "command": init_card.command, "epochs": init_card.epochs,
                                  "init": init_card.extra.get("init")})
    if resumed:
        card = card.replace(resumed_at_epochs=resumed)  # interrupted after these many epochs, then continued
    result = FitResult(model, history.history, card, details)
    if cfg.out:
        result.model_path = save(model, card, details, Path(cfg.out))
        shutil.rmtree(backup, ignore_errors=True)
    progress.emit("done")
    return result


def save(model: keras.Model, card: ModelCard | dict, details: dict, out: Path) -> Path:
    """Write card.json, evaluation.json, then model.keras by atomic rename (last, so its presence means done)."""
    return ModelFolder(Path(out)).save(model, card, details)
