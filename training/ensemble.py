"""Combining trained models into one shipped model: snapshot ensembles and mirror averaging.

``combine`` loads member models of one task, packs them with
:func:`training.builders.build_ensemble`, evaluates the result on the reporting
split through the same ``TaskModel`` path the app uses, and saves it with a card
that lists every command needed to reproduce its members.
"""
from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras

from core.card import ModelCard, ModelFolder, load_card, merge_runs, training_runs
from core.models import TaskModel, load_keras_model
from core.preprocess import FaceSpec
from training.builders import build_ensemble
from training.data import load_dataset
from training.evaluate import evaluate, summary_line
from training.fit import FitResult

log = logging.getLogger(__name__)


@dataclass
class EnsembleConfig:
    task: str
    models: list[str]
    data: str
    flip: bool = True
    out: str | None = None

    def command(self) -> str:
        args = ["python", "-m", "training", "ensemble", "--task", self.task, "--data", self.data,
                "--models", *self.models]
        if not self.flip:
            args.append("--no-flip")
        if self.out:
            args += ["--out", self.out]
        return shlex.join(args)


def member_cards(task: str, models: list[str]) -> tuple[list[ModelCard], FaceSpec]:
    """The cards of models to be averaged, and the face preprocessing they share (else ValueError)."""
    cards = [load_card(Path(p)) for p in models]
    for path, card in zip(models, cards):
        if card.task != task:
            raise ValueError(f"{path} is a model for {card.task}, not for {task}")
    # compared as FaceSpecs: cards written before a field existed hold its default implicitly
    specs = {c.preprocess for c in cards}
    if len(specs) != 1:
        raise ValueError(f"ensemble members were trained on differently preprocessed faces: {sorted(map(str, specs))}")
    return cards, specs.pop()


def combine(cfg: EnsembleConfig) -> FitResult:
    """Build, evaluate on the reporting split and (with ``cfg.out``) save the combined model."""
    cards, spec = member_cards(cfg.task, cfg.models)
    model = build_ensemble([load_keras_model(Path(p)) for p in cfg.models], cfg.flip, name=f"{cfg.task}_ensemble")
    first = cards[0]
    test = load_dataset(cfg.task, cfg.data, "test", spec=spec)
    details = evaluate(TaskModel(cfg.task, model, ModelCard(cfg.task, preprocess=spec,
                                                             class_names=first.class_names)), test)
    runs = merge_runs(training_runs(card) for card in cards)
    card = ModelCard(
        task=cfg.task,
        architecture="+".join(dict.fromkeys(a for c in cards for a in c.architecture.split("+"))),
        input_shape=first.input_shape, preprocess=spec, class_names=first.class_names,
        output=first.output,
        dataset={**first.dataset, "report_split": details["split"], "evaluated_on": Path(cfg.data).name},
        epochs=sum(int(r["epochs"] or 0) for r in runs if r.get("role") != "teacher"),
        params=int(model.count_params()),
        metrics=summary_line(details), metrics_by_group=details.get("by_group", {}),
        command=cfg.command(),
        keras_version=keras.__version__, backend=keras.backend.backend(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"ensemble": {"members": [{"model": p, "command": c.command, "params": c.params}
                                        for p, c in zip(cfg.models, cards)],
                            "mirror_average": cfg.flip},
               "training_runs": runs},
    )
    result = FitResult(model, {}, card, details)
    if cfg.out:
        result.model_path = ModelFolder(Path(cfg.out)).save(model, card, details)
    return result
