"""The options of a training run: one type for the CLI, the job manager and the Training page.

:class:`TrainOptions` names every choice ``python -m training fit`` takes; its fields
mirror the flags (``learning_rate`` is ``--lr``), :func:`add_fit_arguments` declares those
flags and :meth:`TrainOptions.from_args` reads them back, and :meth:`TrainOptions.argv`
is the one place that turns options into a command line: a background job runs it, a
card records it (:meth:`TrainOptions.command`) and an interrupted run is resumed by
comparing it. Nothing here imports Keras, so the page and the job supervisor stay light.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from core.config import TASKS

DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run depends on; ``None`` means the architecture's recipe default
    (:func:`training.builders.recipe`) or, for ``align``/``margin``, the task's default crop."""

    task: str
    data: str
    arch: str = "default"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    augment: bool = True
    fraction: float = 1.0
    seed: int = 0
    out: str | None = None
    progress: str | None = None  # append JSON-line progress events here (the Training page follows them)
    init: str | None = None  # start from this model's weights (a warm restart) instead of random ones
    precision: str = "float32"  # or "mixed_bfloat16": float32 weights, bfloat16 compute (see PRECISIONS)
    teachers: tuple[str, ...] = ()  # distil from these trained models' predictions (see soft_targets)
    distill: float = 0.5  # weight of the teachers' predictions in the targets (1 - it for the labels)
    report_split: str = "test"  # "val" where the data holds no test split (a pack made for training)
    workers: int = DEFAULT_WORKERS  # augmentation threads (results do not depend on it)
    detector: str = "yunet"  # which detector cuts the training faces (core.detection.DETECTORS)
    align: bool | None = None  # turn faces upright by their eyes; None: the task's default crop
    margin: float | None = None  # crop margin; None: the task's default crop

    def __post_init__(self) -> None:
        object.__setattr__(self, "teachers", tuple(self.teachers))

    # -- checking and resolving ------------------------------------------------------
    def validate(self) -> None:
        """ValueError naming the first bad choice (before anything starts)."""
        from training.builders import PRECISIONS

        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if not Path(self.data).exists():
            raise ValueError(f"data not found: {self.data}")
        if (self.epochs is not None and self.epochs < 1) or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError("epochs and batch size must be at least 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError("the learning rate must be positive")
        if not 0 < self.fraction <= 1:
            raise ValueError("the data fraction must be in (0, 1]")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")

    def resolved(self) -> "TrainOptions":
        """These options with the recipe's epochs, batch size and learning rate where none were chosen."""
        from training.builders import recipe

        base = recipe(self.task, self.arch)
        return replace(self, epochs=self.epochs or base.epochs, batch_size=self.batch_size or base.batch_size,
                       learning_rate=self.learning_rate or base.learning_rate)

    # -- command lines ---------------------------------------------------------------
    def argv(self, reproduce: bool = False) -> list[str]:
        """The ``python -m training fit`` flags that run these options. ``reproduce`` leaves out what
        does not change the result (the progress file, the thread count): the command a card records."""
        args = ["--task", self.task, "--data", str(self.data), "--arch", self.arch]
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--lr", self.learning_rate)):
            if value is not None:
                args += [flag, str(value)]
        args += ["--fraction", str(self.fraction), "--seed", str(self.seed)]
        if not self.augment:
            args.append("--no-augment")
        if self.init:
            args += ["--init", self.init]
        if self.precision != "float32":
            args += ["--precision", self.precision]
        for teacher in self.teachers:
            args += ["--teacher", teacher]
        if self.teachers:
            args += ["--distill", str(self.distill)]
        if self.report_split != "test":
            args += ["--report-split", self.report_split]
        if self.detector != "yunet":
            args += ["--detector", self.detector]
        if self.align is not None:
            args += ["--align", "on" if self.align else "off"]
        if self.margin is not None:
            args += ["--margin", str(self.margin)]
        if self.out:
            args += ["--out", str(self.out)]
        if not reproduce:
            if self.progress:
                args += ["--progress", str(self.progress)]
            if self.workers != DEFAULT_WORKERS:
                args += ["--workers", str(self.workers)]
        return args

    def command(self) -> str:
        """The CLI command that reproduces this run (recorded in cards, compared on resume)."""
        return shlex.join(["python", "-m", "training", "fit", *self.argv(reproduce=True)])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainOptions":
        """The options of parsed :func:`add_fit_arguments` flags."""
        return cls(task=args.task, data=args.data, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.lr, augment=not args.no_augment, fraction=args.fraction, seed=args.seed,
                   out=args.out, progress=args.progress, init=args.init, precision=args.precision,
                   teachers=tuple(args.teacher), distill=args.distill, report_split=args.report_split,
                   workers=args.workers, detector=args.detector, margin=args.margin,
                   align=None if args.align is None else args.align == "on")

    # -- JSON form (job records) -----------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["teachers"] = list(self.teachers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainOptions":
        """Options from their JSON form, also as jobs of earlier versions stored them (``lr``, ``arch: null``)."""
        data = dict(data)
        if "lr" in data and "learning_rate" not in data:
            data["learning_rate"] = data.pop("lr")
        if data.get("arch") is None:
            data.pop("arch", None)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m training fit`` (read back by :meth:`TrainOptions.from_args`)."""
    from core.detection import DETECTORS
    from training.builders import ARCHITECTURES, PRECISIONS

    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--data", required=True, help="FER2013 CSV/zip/folder or UTKFace folder/zip/tar(.gz)")
    parser.add_argument("--arch", default="default", choices=sorted(ARCHITECTURES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="learning rate (peak rate for the cosine schedule)")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--fraction", type=float, default=1.0, help="use this fraction of each split (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/latest", help="output folder (model.keras, card.json, evaluation.json)")
    parser.add_argument("--progress", help="append JSON-line progress events to this file")
    parser.add_argument("--init", help="start from this trained model's weights (same task and architecture; a "
                                       "combined model is fine-tuned as a whole)")
    parser.add_argument("--precision", default="float32", choices=sorted(PRECISIONS),
                        help="mixed_bfloat16: bfloat16 compute, float32 weights; faster on CPUs with AVX512-BF16")
    parser.add_argument("--teacher", action="append", default=[],
                        help="distil from this trained model (repeat for several; their mean prediction is used)")
    parser.add_argument("--distill", type=float, default=0.5,
                        help="weight of the teachers' predictions in the training targets (0-1)")
    parser.add_argument("--report-split", default="test", choices=("val", "test"),
                        help="split to report on after training (val for a pack without the test split)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="augmentation threads")
    parser.add_argument("--detector", default="yunet", choices=DETECTORS,
                        help="the face detector that cuts training faces")
    parser.add_argument("--align", choices=("on", "off"),
                        help="turn faces so the eyes are level (default: the task's crop)")
    parser.add_argument("--margin", type=float,
                        help="crop margin around the detector's box (default: the task's crop)")
