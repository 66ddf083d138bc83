"""The batch on a real local Ray cluster (127.0.0.1) writing to a real PostgreSQL (tests/pg.py).

Skips cleanly where Ray (requirements-ray.txt) or the PostgreSQL server binaries are missing.
"""
import core  # noqa: F401  (first: safe native-library import order)

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from core.store import SessionStore
from tests.conftest import REPO_ROOT
from tests.pg import find_pg_bin, postgres_server
from tests.interrupt import run_until_line_then_interrupt
from tests.short_clips import cut_clip, truncated_copy

ray = pytest.importorskip("ray", reason="Ray not installed (pip install -r requirements-ray.txt)")
pytestmark = pytest.mark.skipif(find_pg_bin() is None, reason="PostgreSQL server binaries not installed")
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as server:
        yield server.create_database("facesense_ray")


@pytest.fixture(scope="module")
def ray_address():
    """``ray start --head`` on 127.0.0.1 with 2 CPUs in its own temp dir; ``ray stop`` afterwards."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="fsray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # started outside the checkout and without PYTHONPATH, as on a lab node: the batch makes core importable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                              "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
                              "--disable-usage-stats"], env=env, cwd=temp, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def run_batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.batch", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=400, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_batch_on_a_local_ray_cluster_writes_to_postgresql(ray_address, pg_url, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    cut_clip("multi_face_640x480.avi", folder / "three.avi", 45)
    cut_clip("single_face_640x480.avi", folder / "one.avi", 30)
    shutil.copy(folder / "three.avi", folder / "three_again.avi")
    truncated_copy(folder / "one.avi", folder / "zz_broken.avi")
    summary = tmp_path / "summary.csv"

    run = run_batch(str(folder), "--ray", ray_address, "--db", pg_url, "--summary", str(summary),
                    "--tag", "site=lab", "--batch", "ray run")
    output = run.stdout + run.stderr
    assert run.returncode == 1, output  # the damaged file failed, the others were analysed
    table = pd.read_csv(summary).set_index("file")
    assert table.loc[str(folder / "three.avi"), "result"] == "done"
    assert table.loc[str(folder / "one.avi"), "result"] == "done"
    assert table.loc[str(folder / "three_again.avi"), "result"] == "skipped"
    assert "zz_broken.avi" in table.loc[str(folder / "zz_broken.avi"), "message"]
    store = SessionStore(pg_url)
    assert store.dialect == "postgresql"
    stored = store.list_sessions()
    assert len(stored) == 2 and set(stored["status"]) == {"ended"} and set(stored["batch"]) == {"ray run"}
    assert all(t == {"site": "lab"} for t in stored["tags"])
    three = int(table.loc[str(folder / "three.avi"), "session_id"])
    assert set(store.face_ids(three)) >= {1, 2, 3} and len(store.results(three)) > 100

    # files the nodes cannot read are sent from the driver; the session keeps the driver's path
    run = run_batch(str(folder / "one.avi"), "--ray", ray_address, "--db", pg_url, "--summary", str(summary),
                    "--redo", "--send-files")
    assert run.returncode == 0, run.stdout + run.stderr
    sent = pd.read_csv(summary).iloc[0]
    assert sent["result"] == "done"
    assert store.get_session(int(sent["session_id"]))["source_path"] == str(folder / "one.avi")
    assert len(store.list_sessions()) == 3


def test_ctrl_c_on_the_cluster_leaves_no_half_session_and_the_rerun_finishes(ray_address, pg_url, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    cut_clip("single_face_640x480.avi", folder / "a_first.avi", 33)  # not the other test's clip: not a repeat
    cut_clip("multi_face_640x480.avi", folder / "b_long.avi", 300)
    url = pg_url  # the module's database: this test's sessions are told apart by their batch name
    command = [sys.executable, "-m", "core.batch", str(folder), "--ray", ray_address, "--workers", "1", "--db", url,
               "--summary", str(tmp_path / "s.csv"), "--batch", "ray resumable"]
    code, output = run_until_line_then_interrupt(command, "[1/2]", "a_first.avi: done")
    assert code == 130, output
    assert "deleted unfinished sessions" in output, output  # b_long.avi's, which the killed actor had begun
    store = SessionStore(url)
    ours = store.list_sessions().query("batch == 'ray resumable'")
    assert [Path(p).name for p in ours["source_path"]] == ["a_first.avi"], output  # b_long's session was deleted
    assert set(ours["status"]) == {"ended"}

    rerun = run_batch(*command[3:])
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "a_first.avi: skipped: already analysed" in rerun.stdout
    ours = store.list_sessions().query("batch == 'ray resumable'")
    assert sorted(Path(p).name for p in ours["source_path"]) == ["a_first.avi", "b_long.avi"]
    assert set(ours["status"]) == {"ended"}
