"""Analyse a study's recordings in one go: every video of some files, folders or globs.

One session per file, in ``--workers`` processes that each load the models once
(spawned, not forked: TensorFlow is not fork-safe). A manifest CSV gives per file a
participant, tags and a markers file. A file already analysed with the same content
(SHA-256), the same models and the same analyzer settings is skipped unless ``--redo``,
so a batch that was interrupted is simply started again. A damaged file is reported
and the others go on. Ctrl+C cancels the running files, whose sessions are deleted
(see :func:`delete_unfinished`), and still prints what finished. ``--ray ADDRESS`` runs
the same batch on a Ray cluster (:mod:`core.batch_ray`, docs/batch.md).

CLI::

    python -m core.batch recordings/ --workers 2 --tag study=pilot
    python -m core.batch --manifest study.csv --db postgresql://lab@db-host/facesense
    python -m core.batch "data/**/*.mp4" --ray 10.0.0.5:6379
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import glob
import logging
import multiprocessing
import os
import queue
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd
import sqlalchemy as sa

from core.batch_jobs import (RESULT_COLUMNS, BatchError, BatchInterrupted, BatchOptions,  # noqa: F401  (API)
                             BatchWorker, FileJob, FileResult, analysed_session)
from core.detection import DETECTORS
from core.markers import MarkerFileError, read_markers_csv
from core.store import SessionStore
from core.store_schema import sessions
from core.tags import TagError, format_tags, parse_tags
from core.disk import file_hash
from core.video_analysis import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("file", "participant", "tags", "markers")  # only ``file`` is required
CANCEL_WAIT_S = 60.0  # after Ctrl+C: how long running files get to stop and delete their sessions
EXIT_WAIT_S = 10.0  # then: how long a worker process gets to exit before it is terminated (then killed)


# -- input: paths and the manifest ------------------------------------------------------------


def expand_paths(items: Iterable[str]) -> list[Path]:
    """Files as given, folders searched recursively for video files (by suffix), globs expanded.

    A file named explicitly is taken whatever its suffix (the analysis opens it to decide);
    a path that matches nothing raises :class:`BatchError` naming it.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise BatchError(f"{item}: no file matches this pattern")
            found += files
        else:
            raise BatchError(f"{item}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_manifest(path: str | Path) -> list[FileJob]:
    """Jobs from a manifest CSV: ``file`` (relative to the manifest's folder, or absolute),
    optional ``participant``, ``tags`` (``key=value; key=value``) and ``markers`` (a time_s,label CSV)."""
    manifest = Path(path).expanduser()
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise BatchError(f"manifest not found: {path}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise BatchError(f"manifest {path} is not a readable CSV file ({type(exc).__name__})") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    unknown = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    if "file" not in table.columns or unknown:
        raise BatchError(f"manifest {path} has the columns {', '.join(table.columns) or 'none'}; it needs a 'file' "
                         f"column and may have {', '.join(MANIFEST_COLUMNS[1:])}"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    jobs = []
    for line, row in enumerate(table.to_dict("records"), start=2):
        jobs.append(_manifest_job(manifest, line, {k: str(v).strip() for k, v in row.items()}))
    return jobs


def _manifest_job(manifest: Path, line: int, row: dict[str, str]) -> FileJob:
    where = f"manifest {manifest}, line {line}"
    if not row["file"]:
        raise BatchError(f"{where}: the 'file' cell is empty")
    video = _beside(manifest, row["file"])
    if not video.is_file():
        raise BatchError(f"{where}: video file not found: {row['file']} (looked for {video})")
    try:
        tags = parse_tags(row.get("tags", ""))
        markers = read_markers_csv(_beside(manifest, row["markers"])) if row.get("markers") else []
    except (TagError, MarkerFileError) as exc:
        raise BatchError(f"{where}: {exc}") from exc
    return FileJob(str(video.resolve()), row["file"], row.get("participant") or None, tags, markers)


def _beside(manifest: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def plan_jobs(paths: Sequence[str], manifest: str | None, tags: dict[str, str]) -> list[FileJob]:
    """All jobs of a batch: ``--tag`` tags on every file, a manifest's tags override them per key."""
    merged = {str(p.resolve()): FileJob(str(p.resolve()), str(p)) for p in expand_paths(paths)}
    for job in read_manifest(manifest) if manifest else []:  # a file also given as PATH: its manifest row wins
        merged[job.path] = job
    if not merged:
        raise BatchError("no video file to analyse (give files, folders, globs or --manifest)")
    for job in merged.values():
        job.tags = {**tags, **job.tags}
    return list(merged.values())


def hash_and_dedupe(jobs: list[FileJob]) -> tuple[list[FileJob], list[FileResult]]:
    """Content hashes; a file whose content another file of this batch already has is skipped."""
    first: dict[str, FileJob] = {}
    todo, repeated = [], []
    for job in jobs:
        job.source_hash = file_hash(job.path)
        if job.source_hash in first:
            repeated.append(FileResult(job.label, "skipped", f"same content as {first[job.source_hash].label}",
                                       participant=job.participant, tags=format_tags(job.tags)))
        else:
            first[job.source_hash] = job
            todo.append(job)
    return todo, repeated


# -- the resume rule and Ctrl+C cleanup ---------------------------------------------------------


def delete_unfinished(store: SessionStore, batch: str) -> list[int]:
    """Delete this batch's sessions that never ended properly (still open, or closed as abnormal).

    The safety net behind Ctrl+C: a worker that stopped in time deletes its own session
    (``analyze_video``'s cancel); one that had to be killed leaves it open, and this removes it.
    """
    query = sa.select(sessions.c.id).where(
        sessions.c.batch == batch, sa.or_(sessions.c.ended_at.is_(None), sessions.c.ended_abnormally.is_(True)))
    with store.engine.connect() as conn:
        ids = [int(i) for i in conn.execute(query).scalars()]
    for session_id in ids:
        try:
            store.delete_session(session_id)
        except (KeyError, ValueError) as exc:
            log.warning("could not delete unfinished session %s: %s", session_id, exc)
    if ids:
        log.info("deleted unfinished sessions %s of batch %s", ids, batch)
    return ids


# -- the worker (one per process, or one per Ray actor) ---------------------------------------------


_worker: BatchWorker | None = None
_cancel = None
_progress_queue = None


def _init_worker(options: dict, cancel, progress_queue) -> None:
    """Process-pool initializer: Ctrl+C is the driver's to handle; load the models once."""
    global _worker, _cancel, _progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notes, once per worker: noise
    logging.basicConfig(level=options.pop("log_level", logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    progress_queue.cancel_join_thread()  # progress is disposable: a worker's exit never waits to send it
    _cancel, _progress_queue = cancel, progress_queue
    _worker = BatchWorker(**options)


def _run_in_worker(job: FileJob) -> FileResult:
    def progress(fraction: float) -> None:
        _progress_queue.put((job.path, fraction))

    return _worker.run(job, cancel=_cancel, progress=progress)


# -- the driver -----------------------------------------------------------------------------------


ResultCallback = Callable[[FileResult], None]
ProgressCallback = Callable[[str, float], None]


def run_local(jobs: list[FileJob], options: BatchOptions, on_result: ResultCallback,
              on_progress: ProgressCallback | None = None) -> list[FileResult]:
    """Analyse ``jobs`` in ``options.workers`` spawned processes; :class:`BatchInterrupted` on Ctrl+C."""
    context = multiprocessing.get_context("spawn")
    cancel, progress_queue = context.Event(), context.Queue()
    workers = max(1, min(options.workers, len(jobs)))
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(options.worker_options(), cancel, progress_queue))
    futures: dict[Future, FileJob] = {executor.submit(_run_in_worker, job): job for job in jobs}
    results: list[FileResult] = []
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(progress_queue, on_progress)
            for future in done:
                results.append(_outcome(future, futures[future]))
                on_result(results[-1])
    except KeyboardInterrupt:
        cancel.set()
        for future in pending:
            future.cancel()  # files not started yet
        running = {f for f in pending if not f.cancelled()}
        for outcome in _wait_for_cancelled(running, futures, progress_queue):
            results.append(outcome)
            on_result(outcome)
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        _stop_workers(processes)
        raise BatchInterrupted(results) from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)  # after an interrupt: a no-op, the workers are stopped
        progress_queue.close()
    return results


def _wait_for_cancelled(running: set[Future], futures: dict[Future, FileJob], progress_queue) -> list[FileResult]:
    """The files that were running when Ctrl+C came, once they stopped (or :data:`CANCEL_WAIT_S` passed).

    Progress keeps being read meanwhile, so that no worker waits on a full pipe.
    """
    deadline, finished = time.monotonic() + CANCEL_WAIT_S, []
    while running and time.monotonic() < deadline:
        done, running = wait(running, timeout=0.25)
        _drain(progress_queue, None)
        finished += [outcome for outcome in (_outcome(f, futures[f]) for f in done) if outcome.result != "cancelled"]
    return finished


def _stop_workers(processes: list, wait_s: float = EXIT_WAIT_S) -> None:
    """Worker processes that have not exited ``wait_s`` after the batch stopped are terminated, then killed.

    A worker stuck at exit (a native thread that does not end) would otherwise hold the
    driver's own exit, which joins the pool's processes, for ever.
    """
    deadline = time.monotonic() + wait_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in [p for p in processes if p.is_alive()]:
        log.warning("worker process %s did not exit; terminating it", process.pid)
        process.terminate()
        process.join(wait_s)
        if process.is_alive():
            process.kill()
            process.join(wait_s)


def _outcome(future: Future, job: FileJob) -> FileResult:
    try:
        return future.result()
    except BrokenProcessPool as exc:  # a worker died (out of memory, a crash in native code)
        return FileResult(job.label, "failed", f"the worker process stopped ({exc})", participant=job.participant)
    except Exception as exc:  # noqa: BLE001  (reported in the table; the batch goes on)
        return FileResult(job.label, "failed", f"{type(exc).__name__}: {exc}", participant=job.participant)


def _drain(progress_queue, on_progress: ProgressCallback | None) -> None:
    while True:
        try:
            path, fraction = progress_queue.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        if on_progress is not None:
            on_progress(path, fraction)


# -- output ---------------------------------------------------------------------------------------


def results_frame(results: list[FileResult]) -> pd.DataFrame:
    return pd.DataFrame([r.as_row() for r in results], columns=list(RESULT_COLUMNS))


def summary_table(store: SessionStore, results: list[FileResult]) -> pd.DataFrame:
    """One row per file: its result columns, then :func:`core.export.summary_frame` for its session
    (new or, for a skipped file, the earlier one), with ``session_`` before clashing names."""
    from core.export import summary_frame

    files = results_frame(results)
    ids = sorted({int(i) for i in files["session_id"].dropna()})
    summary = summary_frame(store, ids) if ids else pd.DataFrame(columns=["session_id"])
    summary = summary.rename(columns={c: f"session_{c}" for c in summary.columns
                                      if c in files.columns and c != "session_id"})
    files["session_id"] = files["session_id"].astype("Int64")
    summary["session_id"] = summary["session_id"].astype("Int64")
    return files.merge(summary, on="session_id", how="left")


def print_table(console, results: list[FileResult]) -> None:
    from rich.table import Table

    table = Table(title="FaceSense batch")
    for name, justify in (("file", "left"), ("status", "left"), ("session", "right"), ("frames", "right"),
                          ("faces", "right"), ("video s", "right"), ("wall s", "right"), ("speed", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in results:
        ran = r.result == "done"
        table.add_row(r.file, r.status, "" if r.session_id is None else str(r.session_id),
                      f"{r.frames:,}" if ran else "", f"{r.faces:,}" if ran else "",
                      f"{r.video_s:.1f}" if ran else "", f"{r.wall_s:.1f}" if ran else "",
                      f"{r.speed_x:.2f}x" if ran else "")
    console.print(table)


def _file_line(index: int, total: int, r: FileResult) -> str:
    done = f", {r.frames:,} frames, {r.faces:,} faces, {r.video_s:.1f} s video in {r.wall_s:.1f} s " \
           f"({r.speed_x:.2f}x)" if r.result == "done" else ""
    session = f" session {r.session_id}" if r.session_id is not None and r.result != "skipped" else ""
    return f"[{index}/{total}] {r.file}: {r.status}{session}{done}"


class BatchProgress:
    """An overall bar (files, with the running files' share) and one printed line per finished file."""

    def __init__(self, console, jobs: list[FileJob], already: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console, self.total, self.count = console, len(jobs) + already, already
        self._fractions: dict[str, float] = {}
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True)
        self._task = self._progress.add_task("files", total=self.total, completed=already)

    def __enter__(self) -> "BatchProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def file_progress(self, path: str, fraction: float) -> None:
        self._fractions[path] = fraction
        self._progress.update(self._task, completed=self.count + sum(self._fractions.values()))

    def file_done(self, result: FileResult, path: str | None = None) -> None:
        self._fractions.pop(path or "", None)
        self.count += 1
        self._progress.update(self._task, completed=self.count + sum(self._fractions.values()))
        self._progress.console.print(_file_line(self.count, self.total, result), markup=False, highlight=False)


# -- the CLI --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.batch",
                                     description="Analyse many video files, one FaceSense session per file.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="video files, folders (searched recursively for "
                        + ", ".join(VIDEO_SUFFIXES) + ") or globs (quote them: \"data/**/*.mp4\")")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: the CPU cores; with --ray: the cluster's CPUs)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for one file's analysis in each worker (default: cores / workers)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="a tag for every file, e.g. --tag study=pilot (repeat; a manifest's tags win per key)")
    parser.add_argument("--manifest", metavar="CSV", help="CSV with the columns file[,participant,tags,markers]")
    parser.add_argument("--db", help="SQLAlchemy URL (default: FACESENSE_DB_URL or the SQLite file in FACESENSE_HOME)")
    parser.add_argument("--batch", metavar="NAME", help="batch name stored with each session "
                        "(default: batch DATE TIME)")
    parser.add_argument("--redo", action="store_true", help="analyse files again that were already analysed")
    parser.add_argument("--summary", metavar="CSV", help="summary CSV to write "
                        "(default: facesense-batch-DATE.csv here)")
    parser.add_argument("--detector", default="yunet", choices=DETECTORS, help="face detector (default: yunet)")
    parser.add_argument("--ray", metavar="ADDRESS", help="run on this Ray cluster (host:port of its head; see "
                        "docs/batch.md); needs pip install -r requirements-ray.txt")
    parser.add_argument("--send-files", action="store_true",
                        help="with --ray: always send the files from here instead of reading them on the nodes")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the workers do")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    console = Console(highlight=False)
    if not console.is_terminal:  # a log file or a pipe: wide enough for the table's file names
        console = Console(highlight=False, width=max(console.width, 160))
    started = datetime.now()
    try:
        jobs = plan_jobs(args.paths, args.manifest, parse_tags(args.tag))
    except (BatchError, TagError) as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    if (args.workers is not None and args.workers < 1) or (args.threads is not None and args.threads < 1):
        console.print("error: --workers and --threads must be at least 1", markup=False)
        return 2
    store = SessionStore(args.db)
    options = BatchOptions(args.workers or os.cpu_count() or 1, store.url, args.detector,
                           args.batch or f"batch {started:%Y-%m-%d %H:%M}", args.redo, args.threads)
    todo, repeated = hash_and_dedupe(jobs)
    console.print(f"{len(jobs)} file(s), {len(todo)} to analyse ({len(repeated)} repeated); batch '{options.batch}'",
                  markup=False)
    results: list[FileResult] = []
    interrupted = False
    with BatchProgress(console, todo, 0) as bar:
        for result in repeated:
            results.append(result)
            bar.total += 1
            bar.file_done(result)
        by_label = {job.label: job.path for job in todo}

        def done(result: FileResult) -> None:
            results.append(result)
            bar.file_done(result, by_label.get(result.file))

        previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            if args.ray:
                from core.batch_ray import run_ray

                run_ray(todo, args.ray, options, done, send_files=args.send_files,
                        workers_given=args.workers is not None)
            else:
                run_local(todo, options, done, bar.file_progress)
        except BatchInterrupted:
            interrupted = True
        except BatchError as exc:
            console.print(f"error: {exc}", markup=False)
            return 2
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            if interrupted or len(results) < len(jobs):
                deleted = delete_unfinished(store, options.batch)
                if deleted:
                    console.print(f"deleted unfinished sessions {deleted} of batch '{options.batch}'",
                                  markup=False)
    order = {job.label: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order.get(r.file, len(order)))
    return _finish(console, store, results, args, started, interrupted, len(jobs))


def _sigterm_as_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _finish(console, store: SessionStore, results: list[FileResult], args, started: datetime,
            interrupted: bool, planned: int) -> int:
    print_table(console, results)
    target = Path(args.summary or f"facesense-batch-{started:%Y%m%d-%H%M%S}.csv").expanduser()
    summary_table(store, results).to_csv(target, index=False)
    counts = {k: sum(r.result == k for r in results) for k in ("done", "skipped", "failed")}
    console.print(f"{counts['done']} analysed, {counts['skipped']} skipped, {counts['failed']} failed"
                  + (f", {planned - len(results)} not analysed (interrupted)" if interrupted else "")
                  + f"; summary written to {target}", markup=False)
    if interrupted:
        console.print("interrupted: run the same command again to analyse the rest (finished files are skipped)",
                      markup=False)
        return 130
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
