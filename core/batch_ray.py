"""The batch (:mod:`core.batch`) on a Ray cluster: ``python -m core.batch PATH... --ray HOST:PORT``.

Each worker is a Ray actor holding one analyzer (models loaded once) and a store opened
on the batch's database URL, which every node must reach: a shared PostgreSQL
(``FACESENSE_DB_URL``/``--db``); a SQLite file is refused on a cluster of several nodes.
A file is read on the node when its path exists there with the same content (a shared
folder); otherwise the driver sends its bytes (``ray.put``) and the node analyses a
temporary copy. Results come back in the database, and each actor returns a small
:class:`core.batch.FileResult` for the table. Ctrl+C kills the actors and deletes the
batch's unfinished sessions (:func:`core.batch.delete_unfinished`, run by the driver). Setup: docs/batch.md.
"""
import core  # noqa: F401  (first: safe native-library import order; Ray workers import this module too)

import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

from core.batch_jobs import BatchError, BatchInterrupted, BatchOptions, BatchWorker, FileJob, FileResult
from core.disk import file_hash

log = logging.getLogger(__name__)

RAY_REQUIREMENTS = "pip install -r requirements-ray.txt"
NEED_BYTES = "need-bytes"  # an actor's answer when its node cannot see the file
ACTOR_DIED = "the Ray worker stopped"
KILL_WAIT_S = 30.0  # after Ctrl+C: how long the killed actors' running files get to fail
REPO_ROOT = Path(__file__).resolve().parent.parent


def import_ray():
    """Ray, or a :class:`BatchError` that says how to install it (it is not part of the plain app)."""
    try:
        import ray
    except ImportError as exc:
        raise BatchError(f"--ray needs Ray, which is not installed here: {RAY_REQUIREMENTS}") from exc
    return ray


class RayBatchWorker:
    """The actor: a :class:`BatchWorker` on one node, with files from a shared path or from the driver."""

    def __init__(self, options: dict) -> None:
        logging.basicConfig(level=options.pop("log_level", logging.WARNING),
                            format="%(levelname)s %(name)s: %(message)s")
        self.worker = BatchWorker(**options)

    def node(self) -> str:
        return self.worker.node

    def run(self, job: FileJob, data: bytes | None = None) -> FileResult:
        """Analyse ``job``: from ``data`` when given, else from its path if this node sees that very file."""
        if data is None:
            if not _same_file(job):
                return FileResult(job.label, NEED_BYTES, node=self.worker.node)
            return self.worker.run(job)
        handle, temp = tempfile.mkstemp(prefix="facesense-batch-", suffix=Path(job.path).suffix)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            return self.worker.run(job, path=temp)
        finally:
            os.unlink(temp)


def _same_file(job: FileJob) -> bool:
    path = Path(job.path)
    try:
        return path.is_file() and (job.source_hash is None or file_hash(path) == job.source_hash)
    except OSError:
        return False


def _check_store(url: str, nodes: list[dict]) -> None:
    if url.startswith("sqlite") and len(nodes) > 1:
        raise BatchError(f"the store {url} is a SQLite file, which the other {len(nodes) - 1} node(s) of the "
                         "cluster cannot write to: give a shared database with --db or FACESENSE_DB_URL "
                         "(e.g. postgresql://user@db-host/facesense)")
    if url.startswith("sqlite"):
        log.warning("Ray cluster of one node writing to the SQLite file %s", url)


def _worker_env() -> dict[str, str]:
    """The actors' environment additions: this checkout importable (the same path on every node)."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def run_ray(jobs: list[FileJob], address: str, options: BatchOptions, on_result: Callable[[FileResult], None],
            *, send_files: bool = False, workers_given: bool = False) -> list[FileResult]:
    """Analyse ``jobs`` on the Ray cluster at ``address``; :class:`BatchInterrupted` on Ctrl+C."""
    ray = import_ray()
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True,
                 runtime_env={"env_vars": _worker_env()})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BatchError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        _check_store(options.db or "", nodes)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(options.workers if workers_given else cpus, len(jobs)))
        worker_options = {**options.worker_options(), "threads": options.threads_per_worker or 1}
        actor = ray.remote(num_cpus=1, max_restarts=0)(RayBatchWorker)
        actors = [actor.remote(dict(worker_options)) for _ in range(count)]
        log.info("%d Ray actors on %d node(s), %d CPUs", count, len(nodes), cpus)
        return _dispatch(ray, actors, jobs, on_result, send_files)
    finally:
        ray.shutdown()


def _dispatch(ray, actors: list, jobs: list[FileJob], on_result: Callable[[FileResult], None],
              send_files: bool) -> list[FileResult]:
    """One file per idle actor until all are done; a file its node cannot see is sent from here."""
    todo = list(reversed(jobs))
    actors = list(actors)
    running: dict = {}  # object ref -> (actor, job, sent)
    results: list[FileResult] = []

    def start(worker, job: FileJob, send: bool) -> None:
        data = ray.put(Path(job.path).read_bytes()) if send else None
        running[worker.run.remote(job, data)] = (worker, job, send)

    try:
        for worker in actors:
            if todo:
                start(worker, todo.pop(), send_files)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                worker, job, sent = running.pop(ref)
                result = _result(ray, ref, job)
                if result.result == NEED_BYTES and not sent:
                    log.info("%s is not on node %s: sending it", job.label, result.node)
                    start(worker, job, True)
                    continue
                results.append(result)
                on_result(result)
                if result.message.startswith(ACTOR_DIED):
                    actors.remove(worker)  # its node may be gone; the others take the rest
                elif todo:
                    start(worker, todo.pop(), send_files)
                while todo and not actors:
                    job = todo.pop()
                    results.append(FileResult(job.label, "failed", "no Ray worker left", participant=job.participant))
                    on_result(results[-1])
    except KeyboardInterrupt:
        for worker in actors:
            ray.kill(worker, no_restart=True)
        # ray.kill does not wait: the driver deletes the unfinished sessions next, once no actor can still write
        ray.wait(list(running), num_returns=len(running), timeout=KILL_WAIT_S)
        raise BatchInterrupted(results) from None
    return results


def _result(ray, ref, job: FileJob) -> FileResult:
    try:
        return ray.get(ref)
    except Exception as exc:  # noqa: BLE001  (an actor that died: reported, the batch goes on)
        return FileResult(job.label, "failed", f"{ACTOR_DIED} ({type(exc).__name__}: {exc})",
                          participant=job.participant)
