"""The Statistics page rendered by Streamlit's AppTest on a seeded session database."""
import core  # noqa: F401  (first: safe native-library import order)

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import session_stats as stats
from core.store import SessionStore
from seed_sessions import seed_session

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "statistics.py")
START = datetime(2025, 6, 2, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def seeded() -> tuple[SessionStore, int, int]:
    store = SessionStore()
    long_id = seed_session(store, 900, n_faces=3, name="classroom", start=START)  # 30 s, face 3 leaves a while
    short_id = seed_session(store, 150, n_faces=1, name="interview", start=START + timedelta(hours=1), seed=3)
    return store, long_id, short_id


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def values(data) -> list:
    """A Plotly array from the figure JSON: plain list, or Plotly 6+'s base64 typed array."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_empty_database_explains_what_to_do():
    at = run_page()
    assert "No sessions yet" in at.info[0].value
    assert at.button(key="analyse_video")


def test_one_session_shows_summary_and_small_charts(seeded):
    store, long_id, short_id = seeded
    at = run_page()
    assert at.selectbox(key="session_a").value == short_id  # newest first
    at.selectbox(key="session_a").set_value(long_id).run()
    assert not at.exception
    summary = stats.summary(store, long_id)
    shown = metrics(at)
    assert shown["Duration"] == "0:30" and shown["Frames"] == "900" and shown["Faces"] == "3"
    assert shown["Dominant emotion"] == summary.dominant_emotion
    assert shown["Mean age"] == f"{summary.mean_age:.1f} y"
    assert shown["Female share"] == f"{summary.female_share:.0%}"

    figs = figures(at)
    assert [f["layout"]["title"]["text"] for f in figs] == [
        "Emotion over time (all faces)", "Emotion share (all faces)", "Gender share (all faces)",
        "Estimated age (all faces)"]
    timeline = figs[0]
    assert [t["name"] for t in timeline["data"]] == list(stats.EMOTIONS)
    points = [len(values(t["x"])) for t in timeline["data"]]
    assert 100 <= min(points) and max(points) <= 600  # aggregated: 2,520 rows -> a few hundred points
    assert len(at.get("download_button")) == 2

    at.selectbox(key=f"face_a_{long_id}").set_value(3).run()
    assert not at.exception
    figs = figures(at)
    assert figs[0]["layout"]["title"]["text"] == "Emotion over time (face #3)"
    share = stats.emotion_share(stats.face_emotion_counts(store, long_id), 3)
    assert sum(values(figs[1]["data"][0]["customdata"])) == share["observations"].sum() == 720  # away 180 frames


def test_compare_two_sessions_side_by_side(seeded):
    _, long_id, short_id = seeded
    at = run_page()
    at.toggle(key="compare").set_value(True).run()
    assert not at.exception
    assert (at.selectbox(key="session_a").value, at.selectbox(key="session_b").value) == (short_id, long_id)
    assert [m.value for m in at.metric if m.label == "Faces"] == ["1", "3"]
    assert len(figures(at)) == 8
    table = at.dataframe[0].value  # the comparison table comes first
    assert list(table.columns) == [f"#{short_id} interview", f"#{long_id} classroom"]
    assert table.loc["Frames"].tolist() == ["150", "900"]


def test_rename_and_delete_with_confirmation(seeded):
    store, long_id, short_id = seeded
    at = run_page()
    at.selectbox(key="manage_session").set_value(long_id).run()
    at.text_input(key=f"rename_{long_id}").set_value("classroom, period 2").run()
    at.button(key="rename").click().run()
    assert not at.exception
    assert store.get_session(long_id)["name"] == "classroom, period 2"

    at.selectbox(key="manage_session").set_value(long_id).run()
    at.button(key="delete").click().run()
    assert "cannot be undone" in at.warning[0].value
    at.button(key="confirm_delete_no").click().run()
    assert long_id in store.list_sessions()["id"].tolist()

    at.button(key="delete").click().run()
    at.button(key="confirm_delete_yes").click().run()
    assert not at.exception
    assert store.list_sessions()["id"].tolist() == [short_id]
    assert store.results(long_id).empty
    assert long_id not in at.selectbox(key="session_a").options


def test_bad_video_path_gives_clear_error_and_no_session(seeded, tmp_path):
    store, _, _ = seeded
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a movie")
    at = run_page()
    for path, message in [(tmp_path / "missing.mp4", "not found"), (tmp_path / "notes.txt", "unsupported"),
                          (broken, "cannot read broken.mp4")]:
        if path.suffix == ".txt":
            path.write_text("hello")
        at.text_input(key="video_path").set_value(str(path)).run()
        at.button(key="analyse_video").click().run()
        assert not at.exception
        assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert len(store.list_sessions()) == 2


def test_video_analysis_runs_in_background_and_can_be_cancelled(seeded, shared):
    store, _, _ = seeded
    clip = shared("video", "multi_face_640x480.avi")
    at = run_page()
    at.text_input(key="video_path").set_value(str(clip)).run()
    at.button(key="analyse_video").click().run()
    assert not at.exception
    assert at.button(key="analyse_video").disabled  # one analysis at a time
    at.button(key="cancel_video").click().run()
    deadline = time.monotonic() + 180
    while not any("cancelled" in i.value for i in at.info) and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert any(f"Analysis of {clip.name} cancelled; nothing was saved" in i.value for i in at.info)
    assert not at.button(key="analyse_video").disabled
    assert len(store.list_sessions()) == 2
