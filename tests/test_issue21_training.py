"""Issue 21 ("What a new user tripped over"), the training side: refused uploads leave nothing on
disk and folders are capped (7), the activation confirmation compares and warns (6), and the first
data check reports progress with a count (10)."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import io
import os
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.disk import prune
from training import reports
from training.data import inspect
from training.jobs import UPLOADS_DIR, JobManager
from training_data import small_fer_zip, small_utk_tar

REPO_ROOT = Path(__file__).resolve().parent.parent


def _page() -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _uploads() -> list[str]:
    folder = JobManager().root / UPLOADS_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_refused_and_removed_uploads_leave_nothing_on_disk(tmp_path):
    at = _page()
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload_emotion").upload("fer2013.csv", b"label,image\n0,abc\n", "text/csv")
    at.run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "This data cannot be used" in errors[0] and "emotion,pixels,Usage" in errors[0]
    assert _uploads() == []  # refused: deleted at once
    at.run()  # the reruns after any click keep the message, without the file
    assert [e.value for e in at.error] == errors and at.button(key="start").disabled

    good = small_fer_zip(tmp_path)
    at.file_uploader(key="upload_emotion").upload("faces.zip", good.read_bytes(), "application/zip")
    at.run()
    assert not at.error and len(_uploads()) == 1 and not at.button(key="start").disabled
    at.file_uploader(key="upload_emotion").clear()
    at.run()
    assert not at.exception and _uploads() == []  # given up: gone from the server too


def test_discard_never_touches_files_outside_uploads_or_in_use(tmp_path):
    manager = JobManager()
    outside = tmp_path / "mine.zip"
    outside.write_bytes(b"PK")
    assert not manager.discard_upload(outside) and outside.exists()
    saved = manager.save_upload("a.zip", io.BytesIO(b"PK a"), "emotion")
    assert manager.discard_upload(saved) and not saved.exists()


def test_prune_keeps_folders_under_their_cap(tmp_path, monkeypatch):
    folder = tmp_path / "uploads"
    folder.mkdir()
    now = time.time()
    for i in range(5):
        path = folder / f"f{i}.zip"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - 3600 + i, now - 3600 + i))  # f0 oldest
    fresh = folder / "fresh.zip"
    fresh.write_bytes(b"x" * 1000)  # just written: may still be in use
    removed = prune(folder, 3500, keep=[folder / "f0.zip"])
    assert sorted(p.name for p in removed) == ["f1.zip", "f2.zip", "f3.zip"]
    assert sorted(p.name for p in folder.iterdir()) == ["f0.zip", "f4.zip", "fresh.zip"]
    assert sorted(p.name for p in prune(folder, max_age_s=60)) == ["f0.zip", "f4.zip"]  # age limit; fresh stays
    monkeypatch.setenv("FACESENSE_UPLOADS_MAX_MB", "0")
    manager = JobManager()
    old = manager.save_upload("old.zip", io.BytesIO(b"PK old"), "emotion")
    os.utime(old, (now - 3600, now - 3600))
    new = manager.save_upload("new.zip", io.BytesIO(b"PK new"), "emotion")
    assert new.exists() and not old.exists()  # the newest upload is kept, older ones give way


def test_first_data_check_reports_progress_with_a_count(tmp_path):
    calls: list[tuple[int, int | None]] = []
    data = small_utk_tar(tmp_path)
    summary = inspect("age", data, progress=lambda done, total: calls.append((done, total)))
    files = sum(summary.splits.values()) + summary.skipped
    assert calls[0] == (0, files) and calls[-1] == (files, files)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) >= 3
    again: list = []
    inspect("age", data, progress=lambda done, total: again.append(done))
    assert again == []  # from the cache: nothing to report
    fer: list = []
    inspect("emotion", small_fer_zip(tmp_path), progress=lambda done, total: fer.append((done, total)))
    assert fer[-1][0] == fer[-1][1] > 0


def test_training_page_passes_a_progress_callback_to_the_data_check(tmp_path, monkeypatch):
    import training.data

    seen = {}
    real = training.data.inspect

    def spy(task, path, progress=None, **kwargs):
        seen["progress"] = progress
        progress(0, 23708)
        progress(11854, 23708)
        return real(task, path, **kwargs)
    monkeypatch.setattr(training.data, "inspect", spy)
    at = _page()
    at.text_input(key="data_path").input(str(small_fer_zip(tmp_path))).run()
    assert not at.exception and not at.error
    assert callable(seen["progress"])


def _eval(value, n=3589, metric="accuracy"):
    return {"split": "test", "n": n, "metrics": {metric: value}}


def test_activation_check_compares_warns_and_explains_the_gap():
    card = {"epochs": 1, "dataset": {"fraction": 0.01}}
    history = [{"accuracy": 0.3, "val_accuracy": 0.83}]
    check = reports.activation_check("emotion", card, _eval(0.521), _eval(0.946), history, "the active model (x)")
    assert check["worse"]
    assert check["comparison"] == ("On the same 3589 test images: this model accuracy 0.521, "
                                   "the active model (x) 0.946.")
    assert "worse than the active model (x)" in check["warning"]
    assert "validation (0.830) and test (0.521)" in check["gap"] and "1% of the validation split" in check["gap"]
    better = reports.activation_check("emotion", {}, _eval(0.95), _eval(0.946), [{"val_accuracy": 0.951}])
    assert not better["worse"] and better["warning"] is None and better["gap"] is None
    age = reports.activation_check("age", {}, _eval(9.0, metric="mae"), _eval(5.1, metric="mae"), [])
    assert age["worse"]  # MAE: lower is better
