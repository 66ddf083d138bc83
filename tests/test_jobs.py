"""The background training job API, with real processes and (where it matters) real training.

The long tests run ``python -m training fit`` for real on a few hundred FER2013
faces (1 epoch) through :class:`JobManager`, exactly as the Training page does.
The short ones check the one-job lock, stale-lock recovery, progress folding and
upload handling without TensorFlow.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import core  # noqa: F401  (before anything that may load TensorFlow)
from core.config import app_paths
from core.registry import ModelRegistry
from training import RESUME_DIR
from training.jobs import (CANCELLED, FAILED, SUCCEEDED, JobBusy, JobError, JobManager, TrainOptions,
                           read_progress, sanitize_filename)
from conftest import shared_path
from training_data import small_fer_zip

RUN_TIMEOUT_S = 420   # a 1-epoch run on ~400 faces, generous for 2 busy cores


def _group_pids(pgid: int) -> list[int]:
    """Living processes of a process group, read straight from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _frames(video: Path, count: int) -> list:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert frames, f"cannot read {video}"
    return frames


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def fer_zip(tmp_path) -> Path:
    return small_fer_zip(tmp_path)


# -- real training through the job API -----------------------------------------

def test_real_run_registers_card_and_metrics_and_activation_switches_the_analyzer(fer_zip):
    manager, registry = JobManager(), ModelRegistry()
    active_before = registry.active("emotion").id
    job = manager.start(TrainOptions(task="emotion", data=str(fer_zip), epochs=1, batch_size=32, seed=1,
                                     precision="mixed_bfloat16"))
    job = manager.wait(job.id, RUN_TIMEOUT_S)
    assert job.state == SUCCEEDED, f"{job.state}: {job.message}\n{job.log_tail()}"
    assert manager.current() is None, "the lock must be released when the job ends"

    progress = manager.progress(job.id)
    assert progress.phase == "done" and progress.epochs == 1 and len(progress.history) == 1
    assert "loss" in progress.history[0] and "val_loss" in progress.history[0]

    entry = registry.get(job.model_id)
    assert entry.model_path.is_file() and not entry.is_default
    card = entry.card
    assert card["task"] == "emotion" and card["job_id"] == job.id and card["created"]
    assert card["data"] == str(fer_zip.resolve())
    assert card["options"]["epochs"] == 1 and card["options"]["batch_size"] == 32
    assert card["options"]["precision"] == "mixed_bfloat16" and "--precision mixed_bfloat16" in card["command"]
    assert card["architecture"]
    assert 0.0 <= card["metrics"]["accuracy"] <= 1.0
    evaluation = json.loads((entry.model_path.parent / "evaluation.json").read_text())
    assert evaluation["n"] == 56 and len(evaluation["y_true"]) == 56  # 8 PrivateTest faces x 7 classes
    assert sum(map(sum, evaluation["confusion"])) == 56
    assert set(evaluation["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}

    # a finished run is registered, never activated by itself
    assert registry.active("emotion").id == active_before
    compared = job.active_evaluation()
    if registry.active("emotion").model_path.is_file():   # the shipped model, once it exists
        assert job.active_model_id == active_before
        assert compared is not None and compared["n"] == evaluation["n"], job.notes

    # activation: what the analyzer runs switches without a restart
    from core.analyzer import AnalyzerSettings, FrameAnalyzer
    from core.models import ActiveModels

    registry.activate("emotion", job.model_id)
    analyzer = FrameAnalyzer(ActiveModels(tasks=("emotion",), check_every=1),
                             AnalyzerSettings(tasks=("emotion",)))
    assert analyzer.model_versions() == {"emotion": job.model_id}
    results = [analyzer.analyze(f) for f in _frames(shared_path("video", "single_face_640x480.avi"), 15)]
    faces = [face for r in results for face in r.faces]
    assert faces and all(r.error is None for r in results)
    assert faces[-1].emotion_probs.shape == (7,) and faces[-1].emotion
    second = registry.register(entry.model_path, {**card, "created": None})
    registry.activate("emotion", second.id)
    assert analyzer.model_versions() == {"emotion": second.id}, "hot reload on activation"
    registry.restore_default("emotion")
    assert registry.active("emotion").is_default


def test_cancel_stops_the_processes_registers_nothing_and_frees_the_server(fer_zip):
    manager, registry = JobManager(), ModelRegistry()
    active_before = registry.version()
    job = manager.start(TrainOptions(task="emotion", data=str(fer_zip), epochs=200, batch_size=16))
    pgid = json.loads((app_paths().jobs_dir / "active.lock").read_text())["pid"]
    _wait_for(lambda: manager.progress(job.id).phase == "training" or manager.status(job.id).done,
              RUN_TIMEOUT_S, "training to start")
    assert manager.status(job.id).state == "training"
    assert len(_group_pids(pgid)) >= 2, "supervisor and fit process"

    with pytest.raises(JobBusy, match="already running"):
        manager.start(TrainOptions(task="emotion", data=str(fer_zip), epochs=1))
    assert job.out_dir.joinpath(RESUME_DIR).is_dir(), "fit backs the run up"

    job = manager.cancel(job.id)
    assert job.state == CANCELLED
    assert _group_pids(pgid) == [], "every process of the job is gone"
    assert manager.current() is None
    assert not job.out_dir.joinpath("model.keras").exists()
    assert not job.out_dir.joinpath(RESUME_DIR).exists(), "a cancelled job leaves no backup behind"
    assert [e.id for e in registry.list("emotion")] == ["default-emotion"]
    assert registry.version() == active_before
    assert manager.status(job.id).state == CANCELLED, "a later look keeps it cancelled"


def test_bad_data_fails_the_job_with_the_reason_and_registers_nothing(tmp_path):
    broken = tmp_path / "fer2013.csv"
    broken.write_text("emotion,pixels\n0,1 2 3\n")
    manager = JobManager()
    job = manager.wait(manager.start(TrainOptions(task="emotion", data=str(broken), epochs=1)).id,
                       RUN_TIMEOUT_S)
    assert job.state == FAILED
    assert "Usage" in job.message, job.message     # the loader's message names the missing column
    assert [e.id for e in ModelRegistry().list("emotion")] == ["default-emotion"]
    assert manager.current() is None


# -- the lock, without training ---------------------------------------------------

def test_a_live_lock_holder_refuses_a_second_job_and_a_dead_one_is_taken_over(fer_zip):
    manager = JobManager()
    jobs_dir = app_paths().jobs_dir
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (jobs_dir / "active.lock").write_text(json.dumps({"job_id": "other", "pid": holder.pid}))
        with pytest.raises(JobBusy):
            manager.start(TrainOptions(task="emotion", data=str(fer_zip)))
    finally:
        holder.kill()
        holder.wait()
    # the holder died (crash, reboot): its job is reported failed and the lock is free again
    job_dir = jobs_dir / "other"
    job_dir.mkdir()
    (job_dir / "job.json").write_text(json.dumps({
        "id": "other", "dir": str(job_dir), "state": "training", "created": "2024-01-01T00:00:00+00:00",
        "options": {"task": "emotion", "data": str(fer_zip)}}))
    assert manager.current() is None
    assert manager.status("other").state == FAILED
    assert "unexpectedly" in manager.status("other").message


def test_invalid_options_are_refused_before_anything_starts(fer_zip, tmp_path):
    manager = JobManager()
    for bad in (TrainOptions(task="height", data=str(fer_zip)),
                TrainOptions(task="emotion", data=str(tmp_path / "missing.zip")),
                TrainOptions(task="emotion", data=str(fer_zip), fraction=0.0),
                TrainOptions(task="emotion", data=str(fer_zip), epochs=0),
                TrainOptions(task="emotion", data=str(fer_zip), precision="float16")):
        with pytest.raises(JobError):
            manager.start(bad)
    assert manager.list() == [] and manager.current() is None


def test_progress_folds_events_and_estimates_the_remaining_time(tmp_path):
    events = [{"event": "start", "epochs": 2, "steps": 10, "time": 100.0},
              {"event": "batch", "epoch": 0, "step": 5, "steps": 10, "logs": {"loss": 2.0}, "time": 105.0},
              {"event": "epoch", "epoch": 0, "epochs": 2, "logs": {"loss": 1.9, "val_loss": 1.8,
                                                                   "accuracy": 0.3, "val_accuracy": 0.35},
               "time": 110.0},
              {"event": "batch", "epoch": 1, "step": 5, "steps": 10, "logs": {"loss": 1.5}, "time": 115.0}]
    path = tmp_path / "progress.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + '\n{"event": "bat')  # torn last line
    progress = read_progress(path)
    assert (progress.phase, progress.epochs_done, progress.step, progress.steps_done) == ("training", 1, 5, 15)
    assert progress.fraction == pytest.approx(0.75)
    assert progress.remaining_seconds() == pytest.approx(5.0)   # 1 s per batch, 5 batches left
    assert progress.history == [{"epoch": 1, "loss": 1.9, "val_loss": 1.8, "accuracy": 0.3,
                                 "val_accuracy": 0.35}]
    path.write_text(path.read_text().rsplit("\n", 1)[0] + '\n{"event": "error", "message": "boom", "time": 1}\n')
    assert read_progress(path).error == "boom"


# -- uploads ----------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("fer2013.csv", "fer2013.csv"),
    ("../../etc/passwd.zip", "passwd.zip"),
    ("C:\\Users\\me\\My Faces (1).TAR.GZ", "My_Faces_1.tar.gz"),
    ("..hidden.zip", "hidden.zip"),
    ("émotions été.zip", "motions_t.zip"),
    ("?.csv", "upload.csv"),
    ("a\x00b\n.csv", "a_b.csv"),
])
def test_upload_names_are_sanitised(name, expected):
    assert sanitize_filename(name) == expected


def test_uploads_keep_one_copy_and_unsupported_types_are_refused():
    manager = JobManager()
    first = manager.save_upload("../My data.zip", io.BytesIO(b"PK data"), "emotion")
    again = manager.save_upload("My data.zip", io.BytesIO(b"PK data"), "emotion")
    assert first == again and first.parent == app_paths().jobs_dir / "uploads"
    assert first.name.endswith("-My_data.zip") and first.read_bytes() == b"PK data"
    with pytest.raises(JobError, match="not a supported emotion data file"):
        manager.save_upload("faces.tar", io.BytesIO(b"x"), "emotion")
    with pytest.raises(JobError, match=r"\.zip, \.tar"):
        manager.save_upload("faces.rar", io.BytesIO(b"x"), "age")
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]
