"""Folding fit's JSON-lines progress events into what a progress bar and live curves need."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Progress:
    """The fit's progress events folded into what a progress bar and curves need."""

    phase: str = "preparing"             # preparing | training | evaluating | done | error
    epochs: int = 0
    steps: int = 0                       # batches per epoch
    epochs_done: int = 0
    step: int = 0                        # batches done in the current epoch
    history: list[dict] = field(default_factory=list)   # one logs dict per finished epoch
    batch_logs: dict = field(default_factory=dict)
    start_time: float | None = None      # the fit's "start" event (after data loading)
    last_time: float | None = None       # time of the newest event
    error: str | None = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps

    @property
    def steps_done(self) -> int:
        return min(self.total_steps, self.epochs_done * self.steps + self.step)

    @property
    def fraction(self) -> float:
        """Share of all training batches done, in [0, 1]."""
        if self.phase in ("evaluating", "done"):
            return 1.0
        return self.steps_done / self.total_steps if self.total_steps else 0.0

    def remaining_seconds(self) -> float | None:
        """Training time left, from the time per finished batch so far (None until known)."""
        if self.phase != "training" or not self.steps_done or self.start_time is None:
            return None
        per_step = (self.last_time - self.start_time) / self.steps_done
        return per_step * (self.total_steps - self.steps_done)

    def apply(self, event: dict) -> None:
        """Fold one event in."""
        kind = event.get("event")
        self.last_time = event.get("time", self.last_time)
        if kind == "start":
            self.phase = "training"
            self.epochs = int(event.get("epochs") or 0)
            self.steps = int(event.get("steps") or 0)
            self.start_time = event.get("time")
        elif kind == "batch":
            self.phase = "training"
            self.steps = int(event.get("steps") or self.steps)
            self.step = int(event.get("step") or 0)
            self.batch_logs = dict(event.get("logs") or {})
        elif kind == "epoch":
            self.history.append({"epoch": len(self.history) + 1, **(event.get("logs") or {})})
            self.epochs_done = len(self.history)
            self.epochs = int(event.get("epochs") or self.epochs)
            self.step = 0
        elif kind == "evaluate":
            self.phase = "evaluating"
        elif kind == "done":
            self.phase = "done"
        elif kind == "error":
            self.phase = "error"
            self.error = str(event.get("message", "unknown error"))


def read_progress(path: Path) -> Progress:
    """Fold the JSON-lines progress file; unreadable or half-written lines are skipped."""
    progress = Progress()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return progress
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the writer may be mid-line
        if isinstance(event, dict):
            progress.apply(event)
    return progress
