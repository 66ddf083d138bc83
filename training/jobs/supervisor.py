"""The supervisor process of one job: fit, compare with the active model, register.

It runs ``python -m training fit`` with ``--progress``, then evaluates the currently
active model on the same held-out split for a side-by-side comparison, and only then
registers the new model (never activates it). SIGTERM (a cancel) is held off while
it registers, so a cancel cannot split that step.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from core.card import ModelCard, ModelFolder
from core.registry import ModelRegistry
from training.jobs.lock import JobLock
from training.jobs.processes import run_logged
from training.jobs.progress import read_progress
from training.jobs.record import (ACTIVE_EVALUATION_FILE, EVALUATING, FAILED, REGISTERING, SUCCEEDED, TRAINING, Job,
                                  JobStore, now_iso)

log = logging.getLogger(__name__)

# the page's choices a registered card keeps beside what the fit recorded (the fit's resolved values win)
CARD_OPTIONS = ("epochs", "batch_size", "augment", "fraction", "seed", "precision")


def training_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "training", *args]


def fit_command(job: Job) -> list[str]:
    """The fit this job runs: its options, writing to the job's folder."""
    options = replace(job.options, out=str(job.out_dir), progress=str(job.progress_file))
    return training_command("fit", *options.argv())


def _evaluate_active(job: Job, evaluation: dict, log_fh: BinaryIO) -> None:
    """Evaluate the active model on the split the new model was evaluated on."""
    active = ModelRegistry().active(job.options.task)
    job.active_model_id = active.id
    if not active.model_path.is_file():
        job.notes.append(f"The active model {active.id} has no model file; no comparison.")
        return
    details = job.dir / ACTIVE_EVALUATION_FILE
    cmd = training_command("evaluate", "--task", job.options.task, "--model", str(active.model_path),
                           "--data", job.options.data, "--split", str(evaluation.get("split", "test")),
                           "--details", str(details))
    if run_logged(cmd, log_fh) != 0 or not details.is_file():
        details.unlink(missing_ok=True)
        job.notes.append(f"Evaluating the active model {active.id} failed; see the log.")


def _failure_message(job: Job, returncode: int) -> str:
    progress = read_progress(job.progress_file)
    if progress.error:
        return progress.error
    tail = [line for line in job.log_tail(2000).splitlines() if line.strip()]
    return f"Training exited with code {returncode}." + (f" Last output: {tail[-1]}" if tail else "")


def job_card(job: Job) -> ModelCard:
    """The fit's card with what the job adds: its id, the data path and the page's choices."""
    card = job.card() or ModelCard(job.options.task)
    chosen = {k: getattr(job.options, k) for k in CARD_OPTIONS if getattr(job.options, k) is not None}
    return card.replace(task=job.options.task, job_id=job.id, data=job.options.data,
                        options={**chosen, **(card.options or {})})


def _register(job: Job, store: JobStore) -> None:
    """Copy model + card into the registry; SIGTERM waits so a cancel cannot split this step."""
    card = job_card(job)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        if job.cancel_requested:
            return
        entry = ModelRegistry().register(job.output.model_file, card)
        evaluation = job.evaluation()
        if evaluation is not None:
            ModelFolder(entry.model_path.parent).write_evaluation(evaluation)
        job.model_id, job.state, job.finished = entry.id, SUCCEEDED, now_iso()
        store.save(job)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def run_job(job_dir: Path) -> int:
    """Body of the supervisor process: fit, compare with the active model, register."""
    store, lock = JobStore(job_dir.parent), JobLock(job_dir.parent)
    job = store.load(job_dir.name)
    job.state, job.started, job.pid = TRAINING, now_iso(), os.getpid()
    store.save(job)
    try:
        with open(job.log_file, "ab") as log_fh:
            rc = run_logged(fit_command(job), log_fh)
            if job.cancel_requested:
                return 1
            evaluation = job.evaluation()
            if rc != 0 or not job.output.model_file.is_file() or evaluation is None:
                job.state, job.finished = FAILED, now_iso()
                job.message = _failure_message(job, rc) if rc != 0 else \
                    "Training ended without a model or an evaluation; see the log."
                store.save(job)
                return 1
            job.state = EVALUATING
            store.save(job)
            _evaluate_active(job, evaluation, log_fh)
            job.state = REGISTERING
            store.save(job)
            _register(job, store)
        return 0 if job.state == SUCCEEDED else 1
    except Exception as exc:  # report, never leave a job "running" forever
        log.exception("job %s failed", job.id)
        job.state, job.finished, job.message = FAILED, now_iso(), f"{type(exc).__name__}: {exc}"
        store.save(job)
        return 1
    finally:
        job.discard_backup()
        lock.release(job.id)
