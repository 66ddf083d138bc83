"""The unit tier: ``python -m pytest -m unit`` runs in well under a minute.

A unit test needs no ``../shared`` data, no shipped model, no subprocess (servers, trainings,
interpreters) and no browser. The tests below are marked ``unit`` at collection, and while
a unit test runs those four are guarded: a unit test that reaches one fails with what it
reached, so the tier cannot silently grow slow. Everything else is the integration and
browser tiers; a plain ``python -m pytest`` (and CI) still runs every test.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# whole modules, and single tests of modules that mostly need data or models
UNIT_MODULES: set[str] = set()
UNIT_TESTS = {
    "test_tracking.py::test_iou_and_merge",
    "test_tracking.py::test_tracker_ids_new_person_false_box_and_dropout",
    "test_tracking.py::test_sensitivity_maps_to_min_neighbors",
    "test_tracking.py::test_rolling_mean_and_face_smoother",
    "test_detection.py::test_detection_maps_back_from_a_scaled_window",
    "test_detection.py::test_a_database_written_before_the_cnn_detector_upgrades_and_exports",
    "test_analyzer.py::test_attribute_schedule_spreads_faces_that_fall_due_together",
    "test_analyzer.py::test_ice_servers_from_text",
    "test_analyzer.py::test_overlay_labels",
    "test_analyzer.py::test_live_channel_rates_over_recent_frames",
    "test_live_session.py::test_a_silent_stream_loses_its_slot",
    "test_live_session.py::test_max_streams_from_env",
    "test_live_session.py::test_mailbox_keeps_only_the_newest_frame",
    "test_live_session.py::test_the_gate_takes_turns_fairly",
    "test_live_session.py::test_overlay_boxes_follow_each_face_between_analyses",
    "test_training_cli.py::test_seed_networks_are_the_seed_design",
    "test_training_cli.py::test_compact_wide_and_large_scale_every_convolution_of_the_default_design",
    "test_jobs.py::test_progress_folds_events_and_estimates_the_remaining_time",
    "test_jobs.py::test_upload_names_are_sanitised",
    "test_jobs.py::test_uploads_keep_one_copy_and_unsupported_types_are_refused",
    "test_models.py::test_save_load_round_trip",
    "test_tf_import.py::test_the_configured_backend_is_read_as_keras_reads_it",
    *(f"test_export.py::{name}" for name in (
        "test_frames_csv_columns_rows_and_values", "test_frames_csv_of_two_sessions_has_one_header",
        "test_empty_session_exports_header_only", "test_summary_csv",
        "test_cli_writes_files_and_rejects_unknown_sessions")),
    *(f"test_store.py::{name}" for name in (
        "test_session_round_trip", "test_emotion_model_off_stores_nulls", "test_malformed_result_is_skipped_not_fatal",
        "test_writer_and_reader_at_once", "test_add_never_waits_for_the_database",
        "test_recover_leaves_sessions_recording_in_this_process_alone", "test_rename_and_delete",
        "test_delete_refused_while_recording", "test_bad_arguments", "test_old_schema_is_upgraded",
        "test_sqlite_default_location_created_with_wal", "test_database_url_setting_is_used")),
}
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "unit: needs no ../shared, shipped model, subprocess or browser (fast tier)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        module = Path(str(item.fspath)).name
        if module in UNIT_MODULES or f"{module}::{item.name.split('[')[0]}" in UNIT_TESTS:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A unit test that skipped for want of ../shared is a failure: it needs data."""
    outcome = yield
    report = outcome.get_result()
    if item.get_closest_marker("unit") is not None and report.skipped and "needs ../shared" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"a unit test reached ../shared ({report.longrepr}); unmark it in tests/unit_tier.py"


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"a unit test reached {what}; unmark it in tests/unit_tier.py or remove the need")
    return refused


@pytest.fixture(autouse=True)
def _unit_guard(request, monkeypatch):
    """While a ``unit`` test runs: no subprocess, no shipped model, no ../shared, no browser."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    import core.models
    import tests.conftest

    monkeypatch.setattr(subprocess, "Popen", _refuse("a subprocess"))
    loader = core.models.load_keras_model

    def load_unless_shipped(path, *args, **kwargs):
        if Path(path).resolve().is_relative_to(SHIPPED_MODELS):
            raise AssertionError(f"a unit test reached the shipped model {path}")
        return loader(path, *args, **kwargs)

    monkeypatch.setattr(core.models, "load_keras_model", load_unless_shipped)
    monkeypatch.setattr(tests.conftest, "SHARED_DIR", Path("/nonexistent/unit-tier"))  # skips: made failures below
    try:
        import playwright.sync_api
    except ImportError:
        pass
    else:
        monkeypatch.setattr(playwright.sync_api, "sync_playwright", _refuse("a browser"))
    yield
