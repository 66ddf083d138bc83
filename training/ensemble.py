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

from core.models import TaskModel, load_keras_model
from core.preprocess import FaceSpec
from core.registry import read_card
from training.builders import build_ensemble
from training.data import load_dataset
from training.evaluate import evaluate, summary_line
from training.fit import FitResult, save

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


def training_runs(card: dict) -> list[dict]:
    """The fit runs behind a card, oldest first (a warm-started run lists its starting model's runs first;
    a combined model, its members' runs)."""
    if "training_runs" in card:
        return list(card["training_runs"])
    runs, init = [], card.get("init")
    while init:
        runs.insert(0, {"command": init.get("command"), "epochs": init.get("epochs")})
        init = init.get("init")
    return [*_teacher_runs(card), *runs, {"command": card.get("command"), "epochs": card.get("epochs")}]


def merge_runs(groups) -> list[dict]:
    """The runs of several lists, each once, in order of first appearance. A run that taught one
    member and is part of another (its warm-start chain or a member itself) counts as trained."""
    runs: list[dict] = []
    for group in groups:
        for run in group:
            same = next((i for i, known in enumerate(runs) if known["command"] == run["command"]), None)
            if same is None:
                runs.append(run)
            elif runs[same].get("role") and not run.get("role"):
                runs[same] = run
    return runs


def _teacher_runs(card: dict) -> list[dict]:
    """The runs behind a distilled model's teachers (``role: teacher``: they shaped its targets,
    but their epochs are not the model's own)."""
    groups = []
    for teacher in card.get("teachers", []):
        found = teacher.get("training_runs")
        if found is None:
            try:
                found = training_runs(read_card(Path(teacher["model"])))
            except FileNotFoundError:  # the teacher's card is not at hand: its command is all we know
                found = [{"command": teacher.get("command"), "epochs": None}]
        groups.append([{**r, "role": "teacher"} for r in found])
    return merge_runs(groups)


def member_cards(task: str, models: list[str]) -> tuple[list[dict], FaceSpec]:
    """The cards of models to be averaged, and the face preprocessing they share (else ValueError)."""
    cards = [read_card(Path(p)) for p in models]
    for path, card in zip(models, cards):
        if card.get("task") != task:
            raise ValueError(f"{path} is a model for {card.get('task')}, not for {task}")
    # compared as FaceSpecs: cards written before a field existed hold its default implicitly
    specs = {FaceSpec.from_dict(c["preprocess"]) for c in cards}
    if len(specs) != 1:
        raise ValueError(f"ensemble members were trained on differently preprocessed faces: {sorted(map(str, specs))}")
    return cards, specs.pop()


def combine(cfg: EnsembleConfig) -> FitResult:
    """Build, evaluate on the reporting split and (with ``cfg.out``) save the combined model."""
    cards, spec = member_cards(cfg.task, cfg.models)
    model = build_ensemble([load_keras_model(Path(p)) for p in cfg.models], cfg.flip, name=f"{cfg.task}_ensemble")
    first = cards[0]
    test = load_dataset(cfg.task, cfg.data, "test", spec=spec)
    details = evaluate(TaskModel(cfg.task, model, {"task": cfg.task, "preprocess": spec.to_dict(),
                                                     "class_names": first["class_names"]}), test)
    runs = merge_runs(training_runs(card) for card in cards)
    card = {
        "task": cfg.task,
        "architecture": "+".join(dict.fromkeys(a for c in cards for a in c["architecture"].split("+"))),
        "ensemble": {"members": [{"model": p, "command": c.get("command"), "params": c.get("params")}
                                 for p, c in zip(cfg.models, cards)],
                     "mirror_average": cfg.flip},
        "input_shape": first["input_shape"], "preprocess": spec.to_dict(), "class_names": first["class_names"],
        "output": first["output"],
        "dataset": {**first["dataset"], "report_split": details["split"], "evaluated_on": Path(cfg.data).name},
        "epochs": sum(int(r["epochs"] or 0) for r in runs if r.get("role") != "teacher"), "training_runs": runs,
        "params": int(model.count_params()),
        "metrics": summary_line(details), "metrics_by_group": details.get("by_group", {}),
        "command": cfg.command(),
        "keras_version": keras.__version__, "backend": keras.backend.backend(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    result = FitResult(model, {}, card, details)
    if cfg.out:
        result.model_path = save(model, card, details, Path(cfg.out))
    return result
