"""Background training jobs: start, watch, cancel, and register the result.

Why a separate process: Streamlit reruns the page script on every click and
kills nothing when the browser goes away, so a training that lives in the script
thread would block the UI and die with the session. Here a small *supervisor*
process (``python -m training.jobs run JOB_DIR``) is started in its own session
(process group). It runs ``python -m training fit`` with ``--progress``, then
evaluates the currently active model on the same held-out split for a side-by-side
comparison, and only then registers the new model (never activates it).

Everything a page needs lives on disk under ``app_paths().jobs_dir``:

- ``active.lock``: ``{"job_id", "pid", "token"}`` of the running supervisor. One
  job per server: a start is refused while the named process is alive; a lock
  left by a dead process (crash, reboot) is taken over. Check-and-take happens
  under an ``flock`` so two browser tabs or two server processes cannot race.
- ``<job_id>/job.json``: the job's state, written atomically.
- ``<job_id>/progress.jsonl``: the fit CLI's progress events (read by :func:`read_progress`).
- ``<job_id>/out/``: the fit output (``model.keras``, ``card.json``, ``evaluation.json``).
- ``<job_id>/active_evaluation.json``: the active model on the same split.
- ``<job_id>/log.txt``: stdout/stderr of both child commands, for error reports.

Cancel terminates the whole process group (supervisor and fit), marks the job
cancelled and registers nothing; the active model is never touched by a job.

The package, one concern a module: :mod:`~training.jobs.record` (states, files, the
``job.json`` record), :mod:`~training.jobs.progress` (folding progress events),
:mod:`~training.jobs.processes` (process groups), :mod:`~training.jobs.lock` (the
one-job lock), :mod:`~training.jobs.uploads` (uploaded data files),
:mod:`~training.jobs.manager` (the API the page uses) and
:mod:`~training.jobs.supervisor` (the process that runs a job). The options are
:class:`training.options.TrainOptions`, the type ``python -m training fit`` reads too.
"""
import core  # noqa: F401  (first: safe native-library import order)

from training.jobs.errors import JobBusy, JobError
from training.jobs.manager import JobManager
from training.jobs.progress import Progress, read_progress
from training.jobs.record import (ACTIVE_EVALUATION_FILE, CANCEL_FILE, CANCELLED, EVALUATING, FAILED, JOB_FILE,
                                  LOCK_FILE, LOG_FILE, OUT_DIR, PROGRESS_FILE, REGISTERING, STARTING, SUCCEEDED,
                                  TERMINAL_STATES, TRAINING, UPLOADS_DIR, Job)
from training.jobs.supervisor import run_job
from training.jobs.uploads import UPLOAD_SUFFIXES, sanitize_filename, upload_suffix
from training.options import TrainOptions

__all__ = ["ACTIVE_EVALUATION_FILE", "CANCEL_FILE", "CANCELLED", "EVALUATING", "FAILED", "JOB_FILE", "LOCK_FILE",
           "LOG_FILE", "OUT_DIR", "PROGRESS_FILE", "REGISTERING", "STARTING", "SUCCEEDED", "TERMINAL_STATES",
           "TRAINING", "UPLOADS_DIR", "UPLOAD_SUFFIXES", "Job", "JobBusy", "JobError", "JobManager", "Progress",
           "TrainOptions", "read_progress", "run_job", "sanitize_filename", "upload_suffix"]
