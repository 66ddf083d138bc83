"""The Training page through Streamlit's real script runner: idle, running and finished.

``AppTest`` drives ``app.py`` and switches to the page as the server would. The
running/finished test starts a real 1-epoch training on a few hundred FER2013
faces by clicking "Start training", renders the page while it runs (also from a
second, fresh session, as after a browser reload), then once it finished, and
activates the new model from the page. An age run on a few hundred UTKFace faces
checks the age views (MAE by band, gender and race, beside the active model).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core  # noqa: F401  (before anything that may load TensorFlow in this process)
from core.registry import ModelRegistry
from training.jobs import SUCCEEDED, JobManager, TrainOptions
from training_data import small_fer_zip, small_utk_tar

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/training.py"
RUN_TIMEOUT_S = 180   # first run imports the training library (TensorFlow) on 2 busy cores
TRAIN_TIMEOUT_S = 420


def _page() -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=RUN_TIMEOUT_S)
    at.run()
    at.switch_page(PAGE).run()
    _ok(at)
    return at


def _open_tab(at: AppTest, label: str) -> None:
    """Select a tab as a click would (the page's tabs are a widget keyed ``training_tab``)."""
    at.session_state["training_tab"] = label
    at.run()
    _ok(at)


def _ok(at: AppTest) -> None:
    assert not at.exception, "\n\n".join(str(e.value) for e in at.exception)


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_idle_page_offers_data_options_and_registry_and_refuses_bad_data(tmp_path):
    at = _page()
    assert "Training" in [t.value for t in at.title]
    assert [t.label for t in at.tabs] == ["New training", "Results", "Model registry"]
    assert at.button(key="start").disabled, "nothing can start before valid data is chosen"
    assert at.selectbox(key="arch").options, "architectures are offered"
    _open_tab(at, "Results")
    assert "Finished runs appear here" in _texts(at.info)
    _open_tab(at, "Model registry")
    registry_rows = at.dataframe[0].value
    assert list(registry_rows["model"]) == ["default-emotion"]
    assert registry_rows["active"][0] == "●"
    _open_tab(at, "New training")

    at.text_input(key="data_path").input(str(tmp_path / "nowhere.csv")).run()
    _ok(at)
    assert "Not found on the server" in _texts(at.error)
    assert at.button(key="start").disabled

    bad_csv = tmp_path / "fer2013.csv"
    bad_csv.write_text("label,image\n0,abc\n")
    at.text_input(key="data_path").input(str(bad_csv)).run()
    _ok(at)
    assert "This data cannot be used" in _texts(at.error) and "emotion,pixels,Usage" in _texts(at.error)
    assert at.button(key="start").disabled

    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload_emotion").upload("faces.rar", b"Rar!", "application/octet-stream")
    at.run()
    _ok(at)
    assert "not a supported emotion data file" in _texts(at.error)
    assert at.button(key="start").disabled
    assert not (JobManager().root / "uploads").exists() or not any((JobManager().root / "uploads").iterdir())


def test_running_then_finished_then_activated_from_the_page(tmp_path):
    data = small_fer_zip(tmp_path)
    at = _page()
    at.text_input(key="data_path").input(str(data)).run()
    _ok(at)
    assert not at.error, _texts(at.error)
    split_metrics = {m.label: m.value for m in at.metric}
    assert split_metrics["train images"] == "280" and split_metrics["test images"] == "56"
    assert len(at.image) == 16, "a grid of labelled sample faces"
    assert not at.button(key="start").disabled

    at.number_input(key="epochs_emotion_default").set_value(1)
    at.selectbox(key="batch_emotion_default").set_value(32)
    at.button(key="start").click().run()
    _ok(at)
    manager = JobManager()
    job = manager.current()
    assert job is not None, "the click started a background job"

    # running: progress panel, cancel button, and no second start
    assert "Training in progress" in [s.value for s in at.subheader]
    assert at.button(key="cancel") is not None
    assert at.button(key="start").disabled
    assert "only one runs at a time" in _texts(at.info)
    reloaded = _page()                       # a fresh session, as after a browser reload
    assert "Training in progress" in [s.value for s in reloaded.subheader]
    assert at.get("progress"), "progress bars"

    job = manager.wait(job.id, TRAIN_TIMEOUT_S)
    assert job.state == SUCCEEDED, f"{job.state}: {job.message}\n{job.log_tail()}"

    # finished: results with the evaluation, side by side with the active model when it exists
    at.run()     # the open session: the progress panel notices the end and opens the results
    _ok(at)
    assert "Training in progress" not in [s.value for s in at.subheader]
    assert at.session_state["training_tab"] == "Results"
    assert any(job.id in t.value and "succeeded" in t.value for t in at.toast)
    at = _page()                             # a new session shows the same run
    _open_tab(at, "Results")
    results = _texts(at.markdown)
    assert "succeeded" in results and job.id in results
    charts = at.get("plotly_chart")
    assert len(charts) >= 3, "learning curves, confusion matrix, F1 per class"
    metrics_table = at.dataframe[0].value
    assert "new" in metrics_table.columns and "accuracy" in metrics_table.index

    registry = ModelRegistry()
    assert registry.active("emotion").is_default, "finishing does not activate"
    # issue 21.6: the button is a confirmation that compares both models on the same test split
    assert "On the same" in results and "test images: this model accuracy" in results
    assert at.button(key=f"activate_{job.id}").label == f"Yes, activate {job.model_id}"
    at.button(key=f"activate_{job.id}").click().run()
    _ok(at)
    assert registry.active("emotion").id == job.model_id
    assert "This model is the active emotion model." in _texts(at.success)


def test_age_results_show_mae_by_age_band_gender_and_race_beside_the_active_model(tmp_path):
    manager = JobManager()
    job = manager.start(TrainOptions(task="age", data=str(small_utk_tar(tmp_path)), epochs=1, batch_size=32))
    job = manager.wait(job.id, TRAIN_TIMEOUT_S)
    assert job.state == SUCCEEDED, f"{job.state}: {job.message}\n{job.log_tail()}"
    at = _page()
    _open_tab(at, "Results")
    titles = [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text")
              for chart in at.get("plotly_chart")]
    for title in ("Predicted vs true age", "MAE (years) by age band", "MAE (years) by gender",
                  "MAE (years) by race"):
        assert title in titles, titles
    table = at.dataframe[0].value
    assert table.loc["mae", "new"] == pytest.approx(job.evaluation()["metrics"]["mae"])
    assert table.loc["images", "new"] == 60
    active = ModelRegistry().active("age")
    if active.model_path.is_file():          # the shipped model, evaluated on the same 60 faces
        assert table.loc["mae", f"active ({active.id})"] == pytest.approx(job.active_evaluation()["metrics"]["mae"])
