"""Batch speed-up of 2 workers over 1: ``python -m benchmarks.batch [--copies 4]``.

Copies ../shared/video/multi_face_640x480.avi (3 faces, 23 s) ``--copies`` times into a
temporary folder, each copy made unique by one appended byte (identical files would be
skipped as repeats), and runs ``python -m core.batch`` on them three times, each with a fresh
SQLite store: 1 worker with its default threads (all cores: one file's analysis already
stages frames on a second thread), 1 worker on 1 thread, and 2 workers on 1 thread each (the
default for 2 workers on 2 cores). Before them, one process loads the models, so that their
frozen graphs are in the graph cache (core/graph_cache.py) as for every batch after a user's
first; it prints how long that took. Prints per run the wall time from start to finish (model
loading in every worker included), the video seconds analysed per wall second, and the
speed-up of the 2-worker run over each 1-worker run against the target of 1.7x; then the
machine's cores and load average (other work on the machine slows every run).
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIP = REPO_ROOT.parent / "shared" / "video" / "multi_face_640x480.avi"
TARGET = 1.7


def make_copies(folder: Path, copies: int) -> list[Path]:
    data = CLIP.read_bytes()
    paths = []
    for i in range(copies):
        path = folder / f"copy{i + 1}.avi"
        path.write_bytes(data + bytes([i]))  # a trailing byte FFmpeg ignores: another content hash
        paths.append(path)
    return paths


def run_batch(folder: Path, workers: int, threads: int | None, work: Path) -> tuple[float, pd.DataFrame]:
    name = f"{workers}_{threads or 'default'}"
    summary = work / f"summary_{name}.csv"
    command = [sys.executable, "-m", "core.batch", str(folder), "--workers", str(workers), "--db",
               f"sqlite:///{work / f'bench_{name}.db'}", "--summary", str(summary)]
    command += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"batch with {workers} worker(s) failed:\n{done.stdout}\n{done.stderr}")
    return wall, pd.read_csv(summary)


def prime_graph_cache() -> float:
    """Seconds one process took to load the active models (freezing them on a cold cache)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import core; from core.models import ActiveModels; ActiveModels()"],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()
    if not CLIP.exists():
        raise SystemExit(f"{CLIP} not found (needs ../shared beside the clone)")
    work = Path(tempfile.mkdtemp(prefix="facesense-batch-bench-"))
    cores = os.cpu_count() or 1
    try:
        folder = work / "videos"
        folder.mkdir()
        make_copies(folder, args.copies)
        print(f"{args.copies} copies of {CLIP.name}; {cores} cores, load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} before")
        print(f"graph cache primed: one process loaded the models in {prime_graph_cache():.1f} s")
        print(f"{'workers':>7}{'threads/w':>10}{'wall s':>9}{'video s':>9}{'video s/wall s':>16}"
              f"{'files s (sum)':>15}")
        walls = {}
        for workers, threads in ((1, None), (1, 1), (2, 1)):
            wall, table = run_batch(folder, workers, threads, work)
            assert (table["result"] == "done").all(), table[["file", "result", "message"]]
            video = table["video_s"].sum()
            used = threads or max(1, cores // workers)
            walls[workers, threads] = wall
            print(f"{workers:>7}{used:>10}{wall:>9.1f}{video:>9.1f}{video / wall:>16.2f}{table['wall_s'].sum():>15.1f}")
        two = walls[2, 1]
        print(f"speed-up of 2 workers over 1 worker with its default threads: {walls[1, None] / two:.2f}x; "
              f"over 1 worker on 1 thread: {walls[1, 1] / two:.2f}x (target {TARGET:.1f}x)")
        print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} after")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
