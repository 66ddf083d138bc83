"""The model card, the contract between training and the app, and the files a model lives in.

A :class:`ModelCard` is what ``python -m training`` writes beside every model and what
the app reads to run it: the task, the face preprocessing (:class:`FaceSpec`), the class
order, the figures and how the model came about. ``from_dict``/``to_dict`` read and
write the JSON form; keys the type does not name (provenance such as ``ensemble``,
``card_edits``, ``job_id``) are kept as they are, so a card of any earlier version loads
and is written back with the same content.

:class:`ModelFolder` is the one place that knows a model's files: ``model.keras``,
``card.json`` and ``evaluation.json`` in a run's output folder or a registry entry, and
``models/<task>.keras`` with ``models/<task>.json`` for the shipped ones. The provenance
helpers (:func:`training_runs`, :func:`merge_runs`) read cards only, so they live here
rather than in the training code that writes them.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.config import SHIPPED_MODELS_DIR
from core.preprocess import FaceSpec

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
EVALUATION_FILE = "evaluation.json"


def write_json_atomic(path: Path, data) -> None:
    """Write JSON so that readers see either the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data.to_dict() if isinstance(data, ModelCard) else data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass(frozen=True, eq=True)
class ModelCard(Mapping):
    """One model's card. ``None`` means "not in the card" (cards of earlier versions lack fields);
    ``extra`` holds every other key as read.

    The card also reads as a (read-only) mapping of its JSON form, ``card["metrics"]``, for
    readers not yet moved to the attributes; changes go through :meth:`replace` and friends.
    """

    task: str
    preprocess: FaceSpec | None = None
    class_names: tuple[str, ...] | None = None
    architecture: str | None = None
    output: str | None = None
    input_shape: tuple[int, ...] | None = None
    dataset: dict | None = None
    options: dict | None = None
    metrics: dict | None = None
    metrics_by_group: dict | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    params: int | None = None
    command: str | None = None
    created: str | None = None
    keras_version: str | None = None
    backend: str | None = None
    extra: dict = field(default_factory=dict)

    # -- JSON form --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping) -> "ModelCard":
        """A card from its JSON form (any version); ValueError when it is not a card."""
        if isinstance(data, ModelCard):
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("task"), str):
            raise ValueError(f"not a model card (no task): {str(data)[:80]}")
        typed, extra = {}, {}
        for key, value in data.items():
            if key in _TYPED and value is not None:
                typed[key] = value
            else:  # unknown keys and explicit nulls stay as they were
                extra[key] = value
        try:
            if "preprocess" in typed:
                typed["preprocess"] = FaceSpec.from_dict(typed["preprocess"])
            for key in ("class_names", "input_shape"):
                if key in typed:
                    typed[key] = tuple(typed[key])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model card for {data['task']}: bad {exc}") from exc
        return cls(**typed, extra=extra)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for name in _TYPED:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, FaceSpec):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return {**out, **self.extra}

    # -- reading as a mapping (compatibility) -----------------------------------------
    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    # -- changing ---------------------------------------------------------------------
    def replace(self, **changes) -> "ModelCard":
        """A copy with typed fields changed and/or other keys set (``None`` for a typed field removes it)."""
        typed = {k: v for k, v in changes.items() if k in _TYPED}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in _TYPED}}
        for key in typed:
            extra.pop(key, None)
        return replace(self, **typed, extra=extra)

    # -- provenance -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The class names (empty where the card has none)."""
        return self.class_names or ()

    def training_runs(self) -> list[dict]:
        return training_runs(self)


_TYPED = tuple(f.name for f in fields(ModelCard) if f.name != "extra")


def training_runs(card: Mapping) -> list[dict]:
    """The fit runs behind a card, oldest first (a warm-started run lists its starting model's runs first;
    a combined model, its members' runs)."""
    if "training_runs" in card:
        return list(card["training_runs"])
    runs, init = [], card.get("init")
    while init:
        runs.insert(0, {"command": init.get("command"), "epochs": init.get("epochs")})
        init = init.get("init")
    return [*teacher_runs(card), *runs, {"command": card.get("command"), "epochs": card.get("epochs")}]


def merge_runs(groups: Iterable[Iterable[dict]]) -> list[dict]:
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


def teacher_runs(card: Mapping) -> list[dict]:
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


def teacher_record(path: str) -> dict:
    """What a distilled model's card keeps of a teacher: the runs that trained it, so the card
    stays reproducible after the teacher's own files are gone."""
    try:
        card = read_card(Path(path))
    except FileNotFoundError:  # a model from elsewhere: usable, its history unknown
        return {"command": None}
    return {"command": card.get("command"), "training_runs": training_runs(card)}


# -- files ------------------------------------------------------------------------

def shipped_files(task: str, root: Path = SHIPPED_MODELS_DIR) -> tuple[Path, Path]:
    """The shipped model of ``task`` and its card: ``models/<task>.keras``, ``models/<task>.json``."""
    return root / f"{task}.keras", root / f"{task}.json"


def card_path(model_file: Path | str) -> Path:
    """The card beside a model file: ``<name>.json`` (as shipped in ``models/``) or ``card.json``
    (as ``python -m training`` writes it)."""
    model_file = Path(model_file)
    for candidate in (model_file.with_suffix(".json"), model_file.parent / CARD_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no model card beside {model_file} (expected {model_file.stem}.json or {CARD_FILE})")


def read_card(model_file: Path | str) -> dict:
    """The JSON form of the card beside a model file, as stored."""
    return json.loads(card_path(model_file).read_text())


def load_card(model_file: Path | str) -> ModelCard:
    """The card beside a model file."""
    return ModelCard.from_dict(read_card(model_file))


def write_card(path: Path, card: ModelCard | Mapping) -> None:
    """Write a card file atomically (any mapping is read as a card first, so what is written is one)."""
    write_json_atomic(Path(path), ModelCard.from_dict(card).to_dict())


@dataclass(frozen=True)
class ModelFolder:
    """A folder holding one model: a run's ``--out`` folder or a registry entry."""

    path: Path

    @property
    def model_file(self) -> Path:
        return Path(self.path) / MODEL_FILE

    @property
    def card_file(self) -> Path:
        return Path(self.path) / CARD_FILE

    @property
    def evaluation_file(self) -> Path:
        return Path(self.path) / EVALUATION_FILE

    def is_complete(self) -> bool:
        """Model and card are there (the model is written last, so it means done)."""
        return self.model_file.is_file() and self.card_file.is_file()

    def read_card(self) -> ModelCard:
        return ModelCard.from_dict(json.loads(self.card_file.read_text()))

    def write_card(self, card: ModelCard | Mapping) -> None:
        write_card(self.card_file, card)

    def read_evaluation(self) -> dict | None:
        try:
            return json.loads(self.evaluation_file.read_text())
        except (OSError, ValueError):
            return None

    def write_evaluation(self, details: Mapping) -> None:
        write_json_atomic(self.evaluation_file, details)

    def save(self, model, card: ModelCard | Mapping, evaluation: Mapping) -> Path:
        """Write evaluation.json, card.json, then the model (a Keras model's ``save``) by atomic rename,
        last, so that its presence means the folder is complete."""
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self.write_evaluation(evaluation)
        self.write_card(card)
        tmp = Path(self.path) / ".model.tmp.keras"
        model.save(tmp)
        os.replace(tmp, self.model_file)
        return self.model_file
