"""Batch analysis (core.batch): folders, a damaged and a repeated file, the manifest, resume after Ctrl+C.

Real models in real spawned worker processes, on short clips cut from ../shared (skips without it).
"""
import core  # noqa: F401  (first: safe native-library import order)

import multiprocessing
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.batch import BatchError, _stop_workers, main, plan_jobs, read_manifest
from core.store import SessionStore
from tests.conftest import REPO_ROOT
from tests.interrupt import run_until_line_then_interrupt
from tests.short_clips import cut_clip, truncated_copy


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {"three": cut_clip("multi_face_640x480.avi", folder / "three.avi", 45),
            "one": cut_clip("single_face_640x480.avi", folder / "one.avi", 30),
            "long": cut_clip("multi_face_640x480.avi", folder / "long.avi", 240)}


def sessions_of(url: str) -> pd.DataFrame:
    return SessionStore(url).list_sessions().sort_values("id").reset_index(drop=True)


def test_folder_with_a_damaged_and_a_repeated_file(clips, tmp_path, capsys):
    folder = tmp_path / "study"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(clips["three"], folder / "P01.avi")
    shutil.copy(clips["three"], folder / "day2" / "P01_again.avi")  # same content, other name: skipped
    shutil.copy(clips["one"], folder / "P02.avi")
    truncated_copy(clips["one"], folder / "P03_broken.avi")
    (folder / "notes.txt").write_text("not a video")  # a folder's non-video files are left alone
    url, summary = f"sqlite:///{tmp_path / 'batch.db'}", tmp_path / "summary.csv"

    code = main([str(folder), "--workers", "2", "--db", url, "--summary", str(summary), "--tag", "study=pilot",
                 "--batch", "pilot run"])
    out = capsys.readouterr().out
    assert code == 1, out  # one file failed; the others went on
    table = pd.read_csv(summary).set_index("file")
    assert set(table.index) == {str(folder / n) for n in ("P01.avi", "day2/P01_again.avi", "P02.avi",
                                                          "P03_broken.avi")}
    result = table["result"].to_dict()
    assert result[str(folder / "P01.avi")] == "done" and result[str(folder / "P02.avi")] == "done"
    assert result[str(folder / "day2/P01_again.avi")] == "skipped"
    assert "same content as" in table.loc[str(folder / "day2/P01_again.avi"), "message"]
    assert result[str(folder / "P03_broken.avi")] == "failed"
    assert "P03_broken.avi" in table.loc[str(folder / "P03_broken.avi"), "message"]
    assert "P03_broken.avi" in out and "FaceSense batch" in out  # the table is printed
    stored = sessions_of(url)
    assert len(stored) == 2 and set(stored["status"]) == {"ended"}
    assert set(stored["batch"]) == {"pilot run"} and all(t == {"study": "pilot"} for t in stored["tags"])
    assert stored["source_hash"].str.len().eq(64).all()
    done = table[table["result"] == "done"]
    assert (done["frames"] > 0).all() and done["session_frames"].eq(done["frames"]).all()  # + summary columns

    # the same command again: everything already analysed is skipped, nothing is stored twice
    assert main([str(folder), "--workers", "1", "--db", url, "--summary", str(summary)]) == 1
    again = pd.read_csv(summary).set_index("file")
    assert again.loc[str(folder / "P01.avi"), "result"] == "skipped"
    assert "already analysed" in again.loc[str(folder / "P02.avi"), "message"]
    assert len(sessions_of(url)) == 2

    # --redo analyses them again
    assert main([str(folder / "P02.avi"), "--workers", "1", "--db", url, "--summary", str(summary), "--redo"]) == 0
    assert len(sessions_of(url)) == 3


def test_manifest_gives_participant_tags_and_markers(clips, tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    shutil.copy(clips["one"], tmp_path / "videos" / "a.avi")
    (tmp_path / "a_markers.csv").write_text("time_s,label\n0,start\n0.5,task\n")
    manifest = tmp_path / "study.csv"
    manifest.write_text("file,participant,tags,markers\nvideos/a.avi,P07,condition=A; site=Leeds,a_markers.csv\n")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    code = main(["--manifest", str(manifest), "--tag", "condition=B", "--tag", "wave=1", "--workers", "1",
                 "--db", url, "--summary", str(tmp_path / "s.csv")])
    assert code == 0, capsys.readouterr().out
    stored = sessions_of(url)
    assert len(stored) == 1
    row = stored.iloc[0]
    assert row["participant"] == "P07"
    assert row["tags"] == {"condition": "A", "site": "Leeds", "wave": "1"}  # the manifest wins per key
    assert list(SessionStore(url).markers(int(row["id"]))["label"]) == ["start", "task"]


@pytest.mark.unit
def test_bad_input_names_what_the_user_gave(tmp_path, capsys):
    manifest = tmp_path / "wrong.csv"
    manifest.write_text("video,person\nx.avi,P1\n")
    with pytest.raises(BatchError, match=r"wrong\.csv has the columns video, person; it needs a 'file' column"):
        read_manifest(manifest)
    manifest.write_text("file,participant\nmissing.avi,P1\n")
    with pytest.raises(BatchError, match=r"line 2: video file not found: missing\.avi"):
        read_manifest(manifest)
    with pytest.raises(BatchError, match="nowhere/x.avi: no such file or folder"):
        plan_jobs([str(tmp_path / "nowhere" / "x.avi")], None, {})
    with pytest.raises(BatchError, match=r"\*\.mp4: no file matches"):
        plan_jobs([str(tmp_path / "*.mp4")], None, {})
    assert main(["--manifest", str(tmp_path / "absent.csv")]) == 2
    assert "manifest not found" in capsys.readouterr().out


def _deaf_worker(ready) -> None:
    """A worker stuck at exit: it ignores SIGTERM and never returns."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    while True:
        time.sleep(1)


@pytest.mark.unit
def test_a_worker_that_does_not_exit_is_terminated_then_killed():
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    quits, deaf = context.Process(target=time.sleep, args=(0.2,)), context.Process(target=_deaf_worker, args=(ready,))
    quits.start()
    deaf.start()
    assert ready.wait(60)
    started = time.monotonic()
    _stop_workers([quits, deaf], wait_s=1.0)
    assert not quits.is_alive() and quits.exitcode == 0
    assert not deaf.is_alive() and deaf.exitcode == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_interrupted_batch_leaves_no_half_session_and_resumes(clips, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(clips["one"], folder / "a_first.avi")
    shutil.copy(clips["long"], folder / "b_long.avi")
    shutil.copy(clips["three"], folder / "c_last.avi")
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    command = [sys.executable, "-m", "core.batch", str(folder), "--workers", "1", "--db", url,
               "--summary", str(tmp_path / "s.csv"), "--batch", "resumable"]
    code, output = run_until_line_then_interrupt(command, "[1/3]", "a_first.avi: done")
    assert code == 130, output
    assert "interrupted" in output and "run the same command again" in output
    stored = sessions_of(url)
    assert list(stored["source_path"].map(lambda p: Path(p).name)) == ["a_first.avi"], output
    assert set(stored["status"]) == {"ended"}  # no half-written session of b_long.avi

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "a_first.avi: skipped: already analysed" in rerun.stdout
    stored = sessions_of(url)
    assert sorted(stored["source_path"].map(lambda p: Path(p).name)) == ["a_first.avi", "b_long.avi", "c_last.avi"]
    assert set(stored["status"]) == {"ended"}
