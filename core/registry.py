"""Model registry: every trained model with its card, and which one is active per task.

Shipped defaults live in ``models/`` (read-only, part of the clone); user-trained
models are copied into ``<FACESENSE_HOME>/registry/<id>/``. The active choice is a
small JSON file replaced atomically (``os.replace``), so a reader never sees a
half-written state and a failed training, which never calls :meth:`activate`,
cannot change what the app runs.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.card import (CARD_FILE, MODEL_FILE, ModelCard, ModelFolder, card_path, read_card, shipped_files,
                       write_json_atomic)
from core.config import TASKS, app_paths

__all__ = ["CARD_FILE", "MODEL_FILE", "ModelEntry", "ModelRegistry", "card_path", "default_id", "read_card",
           "shipped_model", "write_json_atomic"]  # card_path, read_card, write_json_atomic: from core.card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    id: str
    task: str
    model_path: Path
    card: ModelCard
    is_default: bool

    @property
    def created(self) -> str:
        return str(self.card.created or "")


def default_id(task: str) -> str:
    return f"default-{task}"


def shipped_model(task: str) -> ModelEntry:
    """The model that ships in ``models/`` for ``task``."""
    model_file, card_file = shipped_files(task)
    card = ModelCard.from_dict(json.loads(card_file.read_text())) if card_file.is_file() else ModelCard(task)
    return ModelEntry(default_id(task), task, model_file, card, True)


class ModelRegistry:
    """Lists, registers and activates models; ``root`` defaults to the app's registry dir."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else app_paths().registry_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self._active_file = self.root / "active.json"

    # -- reading -----------------------------------------------------------------
    def _read_active(self) -> dict[str, str]:
        try:
            return json.loads(self._active_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("unreadable %s (%s); using the shipped defaults", self._active_file, exc)
            return {}

    def get(self, model_id: str) -> ModelEntry:
        if model_id.startswith("default-") and model_id[len("default-"):] in TASKS:
            return shipped_model(model_id[len("default-"):])
        folder = ModelFolder(self.root / model_id)
        if not folder.is_complete():
            raise KeyError(f"no registered model {model_id!r}")
        card = folder.read_card()
        return ModelEntry(model_id, card.task, folder.model_file, card, False)

    def list(self, task: str | None = None) -> list[ModelEntry]:
        """Shipped defaults first, then registered models, newest first."""
        tasks = [task] if task else list(TASKS)
        entries = [shipped_model(t) for t in tasks]
        registered = []
        for folder in self.root.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                try:
                    entry = self.get(folder.name)
                except (KeyError, ValueError, OSError):
                    continue
                if entry.task in tasks:
                    registered.append(entry)
        registered.sort(key=lambda e: e.created, reverse=True)
        return entries + registered

    def active(self, task: str) -> ModelEntry:
        model_id = self._read_active().get(task)
        if model_id:
            try:
                return self.get(model_id)
            except (KeyError, ValueError, OSError) as exc:
                log.warning("active %s model %s unusable (%s); using the default", task, model_id, exc)
        return shipped_model(task)

    def version(self) -> str:
        """Changes whenever the active selection changes (cheap to poll per frame batch)."""
        return json.dumps(self._read_active(), sort_keys=True)

    # -- writing -----------------------------------------------------------------
    def register(self, model_file: Path, card: ModelCard | Mapping) -> ModelEntry:
        """Copy a finished model and its card into the registry (not activated)."""
        card = ModelCard.from_dict(card)
        task = card.task
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        card = card.replace(created=card.created or datetime.now(timezone.utc).isoformat())
        model_id = f"{task}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        staging = ModelFolder(Path(tempfile.mkdtemp(dir=self.root, prefix=".staging-")))
        try:
            shutil.copy2(model_file, staging.model_file)
            staging.write_card(card)
            os.replace(staging.path, self.root / model_id)
        except BaseException:
            shutil.rmtree(staging.path, ignore_errors=True)
            raise
        log.info("registered %s", model_id)
        return self.get(model_id)

    def activate(self, task: str, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        if entry.task != task:
            raise ValueError(f"model {model_id} is a {entry.task} model, not {task}")
        active = self._read_active()
        active[task] = model_id
        write_json_atomic(self._active_file, active)
        log.info("activated %s for %s", model_id, task)
        return entry

    def restore_default(self, task: str) -> ModelEntry:
        return self.activate(task, default_id(task))

    def delete(self, model_id: str) -> None:
        """Remove a registered model; the active one and the defaults cannot be deleted."""
        entry = self.get(model_id)
        if entry.is_default or self.active(entry.task).id == model_id:
            raise ValueError("the shipped default and the active model cannot be deleted")
        shutil.rmtree(self.root / model_id)
