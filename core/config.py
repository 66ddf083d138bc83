"""Where FaceSense keeps its files, read from the environment in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = REPO_ROOT / "models"
TASKS = ("emotion", "age", "gender")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _home() -> Path:
    return Path(os.environ.get("FACESENSE_HOME", Path.home() / ".facesense")).expanduser()


@dataclass(frozen=True)
class AppPaths:
    """Writable locations; ``FACESENSE_HOME`` moves all of them (tests use a tmp dir)."""

    home: Path = field(default_factory=_home)

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the session store; ``FACESENSE_DB_URL`` overrides the SQLite file."""
        return os.environ.get("FACESENSE_DB_URL") or f"sqlite:///{self.home / 'facesense.db'}"

    def ensure(self) -> "AppPaths":
        for path in (self.home, self.registry_dir, self.cache_dir, self.jobs_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self


def app_paths() -> AppPaths:
    """Paths for the current environment (re-read each call so tests can switch homes)."""
    return AppPaths().ensure()
