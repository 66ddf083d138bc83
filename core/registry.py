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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.config import SHIPPED_MODELS_DIR, TASKS, app_paths

log = logging.getLogger(__name__)
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    task: str
    model_path: Path
    card: dict
    is_default: bool

    @property
    def created(self) -> str:
        return str(self.card.get("created", ""))


def default_id(task: str) -> str:
    return f"default-{task}"


def shipped_model(task: str) -> ModelEntry:
    """The model that ships in ``models/`` for ``task``."""
    card_path = SHIPPED_MODELS_DIR / f"{task}.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {"task": task}
    return ModelEntry(default_id(task), task, SHIPPED_MODELS_DIR / f"{task}.keras", card, True)


def card_path(model_file: Path | str) -> Path:
    """The card beside a model file: ``<name>.json`` (as shipped in ``models/``) or ``card.json``
    (as ``python -m training`` writes it)."""
    model_file = Path(model_file)
    for candidate in (model_file.with_suffix(".json"), model_file.parent / CARD_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no model card beside {model_file} (expected {model_file.stem}.json or {CARD_FILE})")


def read_card(model_file: Path | str) -> dict:
    return json.loads(card_path(model_file).read_text())


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that readers see either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


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
        folder = self.root / model_id
        card_path, model_path = folder / CARD_FILE, folder / MODEL_FILE
        if not (card_path.is_file() and model_path.is_file()):
            raise KeyError(f"no registered model {model_id!r}")
        card = json.loads(card_path.read_text())
        return ModelEntry(model_id, card["task"], model_path, card, False)

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
    def register(self, model_file: Path, card: dict) -> ModelEntry:
        """Copy a finished model and its card into the registry (not activated)."""
        task = card["task"]
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        card = {**card, "created": card.get("created") or datetime.now(timezone.utc).isoformat()}
        model_id = f"{task}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".staging-"))
        try:
            shutil.copy2(model_file, staging / MODEL_FILE)
            write_json_atomic(staging / CARD_FILE, card)
            os.replace(staging, self.root / model_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
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
