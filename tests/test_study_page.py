"""The Statistics page's study views (issue 17) in Streamlit's AppTest, on a real session database:
markers added and edited after the fact, drawn on the charts, the segment table, the baseline,
participant and tags, group comparison, filtering by batch/participant/tag, the video form."""
import core  # noqa: F401  (first: safe native-library import order)

from datetime import datetime, timedelta, timezone

import pytest

from core import study
from core.store import SessionStore
from seed_sessions import seed_session
from test_statistics_page import fake_models, figures, run_page, wait_until_done, wmv_clip  # noqa: F401

START = datetime(2025, 6, 2, 14, 0, tzinfo=timezone.utc)


def table_with(at, column: str):
    """The one dataframe on the page that has ``column`` (AppTest finds dataframes by position only)."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


@pytest.fixture
def session() -> tuple[SessionStore, int]:
    store = SessionStore()
    return store, seed_session(store, 900, n_faces=2, name="usability", start=START)  # 30 s


def test_markers_added_after_the_fact_are_drawn_and_segmented(session):
    store, sid = session
    at = run_page()
    at.selectbox(key="study_session").set_value(sid).run()
    for seconds, label in [(10.0, "screen 1"), (20.0, "screen 2")]:
        at.number_input(key="new_marker_time").set_value(seconds).run()
        at.text_input(key="new_marker_label").set_value(label).run()
        at.button(key="add_marker").click().run()
        assert not at.exception, [e.value for e in at.exception]
    marks = store.markers(sid)
    assert marks["label"].tolist() == ["screen 1", "screen 2"]
    assert (marks["timestamp"] - START.timestamp()).tolist() == pytest.approx([10.0, 20.0])

    second = int(marks["id"].iloc[1])  # edit the second one: new label and time
    at.selectbox(key=f"edit_marker_{sid}").set_value(second).run()
    at.text_input(key=f"edit_marker_label_{second}").set_value("checkout").run()
    at.number_input(key=f"edit_marker_time_{second}").set_value(22.5).run()
    at.button(key="save_marker").click().run()
    assert not at.exception
    marks = store.markers(sid)
    assert marks["label"].tolist() == ["screen 1", "checkout"]
    assert marks["timestamp"].iloc[1] - START.timestamp() == pytest.approx(22.5)

    at.text_input(key="new_marker_label").set_value("  ").run()  # an empty label: refused, said so
    at.button(key="add_marker").click().run()
    assert any("needs a label" in e.value for e in at.error), [e.value for e in at.error]
    assert len(store.markers(sid)) == 2

    # the Charts tab: lines at the markers, labelled bands, a segment table per segment and face
    at.selectbox(key="session_a").set_value(sid).run()
    timeline = figures(at)[0]
    shapes = timeline["layout"]["shapes"]
    lines = sorted(s["x0"] for s in shapes if s["type"] == "line")
    assert lines == pytest.approx([10.0, 22.5], abs=0.01)
    assert {a["text"] for a in timeline["layout"]["annotations"]} == {study.BEFORE_FIRST_MARKER, "screen 1",
                                                                      "checkout"}
    table = table_with(at, "face_found_share")
    assert table["label"].tolist() == [study.BEFORE_FIRST_MARKER] * 2 + ["screen 1"] * 2 + ["checkout"] * 2
    assert table["duration_s"].tolist() == pytest.approx([10.0] * 2 + [12.5] * 2 + [7.5] * 2, abs=0.01)
    expected = study.segment_stats(study.session_study(store, sid))
    assert table["valence"].to_numpy() == pytest.approx(expected["valence"].to_numpy())

    at.selectbox(key="study_session").set_value(sid).run()  # and delete one
    first = int(marks["id"].iloc[0])
    at.selectbox(key=f"edit_marker_{sid}").set_value(first).run()
    at.button(key="delete_marker").click().run()
    assert store.markers(sid)["label"].tolist() == ["checkout"]


def test_baseline_participant_and_tags_are_stored_with_the_session(session):
    store, sid = session
    at = run_page()
    at.selectbox(key="study_session").set_value(sid).run()
    at.text_input(key=f"participant_{sid}").set_value("P07").run()
    at.text_input(key=f"tags_{sid}").set_value("condition=A; site = Leeds").run()
    at.button(key="save_study_info").click().run()
    info = store.get_session(sid)
    assert (info["participant"], info["tags"]) == ("P07", {"condition": "A", "site": "Leeds"})

    at.text_input(key=f"tags_{sid}").set_value("condition").run()  # not key=value: refused, nothing lost
    at.button(key="save_study_info").click().run()
    assert any("'condition' is not key=value" in e.value for e in at.error), [e.value for e in at.error]
    assert store.get_session(sid)["tags"] == {"condition": "A", "site": "Leeds"}

    at.radio(key=f"baseline_kind_{sid}").set_value("first_seconds").run()
    at.number_input(key=f"baseline_seconds_{sid}").set_value(5.0).run()
    at.button(key="save_baseline").click().run()
    assert not at.exception
    assert store.get_session(sid)["baseline"] == {"kind": "first_seconds", "seconds": 5.0}

    at.selectbox(key="session_a").set_value(sid).run()
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert "Emotion relative to baseline, first 5 s (all faces)" in titles
    valence = figures(at)[titles.index("Valence over time (all faces)")]
    assert [t["name"] for t in valence["data"]] == ["valence", "valence vs baseline"]

    at.radio(key=f"baseline_kind_{sid}").set_value("none").run()
    at.button(key="save_baseline").click().run()
    assert store.get_session(sid)["baseline"] is None


def test_groups_by_tag_and_the_session_lists_filter_by_batch_participant_and_tag():
    store = SessionStore()
    ids = []
    for seed, (person, condition) in enumerate([("P1", "A"), ("P2", "A"), ("P3", "B")]):
        sid = seed_session(store, 90, n_faces=1, name=f"session {person}", start=START + timedelta(hours=seed),
                           seed=seed)
        store.update_session(sid, participant=person, tags={"condition": condition})
        ids.append(sid)
    plain = seed_session(store, 30, n_faces=1, name="untagged", start=START + timedelta(hours=5))
    at = run_page()
    assert at.selectbox(key="group_key").options == ["participant", "tag “condition”"]
    at.selectbox(key="group_key").set_value("tag:condition").run()
    assert not at.exception, [e.value for e in at.exception]
    table = table_with(at, "std_valence")
    expected = study.compare_groups(study.per_session_means(store, store.list_sessions(), "tag:condition"))
    assert table["group"].tolist() == ["(not set)", "A", "B"]
    assert table["sessions"].tolist() == [1, 2, 1]
    assert table["mean_valence"].to_numpy() == pytest.approx(expected["mean_valence"].to_numpy())
    chart = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Mean valence by")][0]
    assert chart["data"][0]["x"] == ["(not set)", "A", "B"]

    def listed() -> list[int]:  # the session picker's options are its labels: "#3 · name · P3 · ..."
        return [int(label.split(" ·")[0].lstrip("#")) for label in at.selectbox(key="session_a").options]

    at.multiselect(key="filter_tag").set_value(["condition=A"]).run()
    assert sorted(listed()) == sorted(ids[:2])
    at.multiselect(key="filter_tag").set_value([]).run()
    at.multiselect(key="filter_participant").set_value(["P3"]).run()
    assert listed() == [ids[2]]
    assert " · P3 · " in at.selectbox(key="session_a").options[0]
    at.multiselect(key="filter_participant").set_value([]).run()
    at.selectbox(key="group_lists_by").set_value("participant").run()
    assert listed() == [plain, *ids]  # "(not set)" sorts first, then P1, P2, P3


def test_video_form_refuses_bad_tags_and_stores_participant_and_tags(shared, tmp_path, fake_models):  # noqa: F811
    store = SessionStore()
    fake_models(faces=1)
    clip = wmv_clip(shared, tmp_path / "stimulus.wmv")
    at = run_page()
    at.text_input(key="video_path").set_value(str(clip)).run()
    at.text_input(key="video_participant").set_value("P09").run()
    at.text_input(key="video_tags").set_value("condition B").run()
    at.button(key="analyse_video").click().run()
    assert [e.value for e in at.error] == ["tag 'condition B' is not key=value (for example condition=A)"]
    assert store.list_sessions().empty
    at.text_input(key="video_tags").set_value("condition=B").run()
    at.button(key="analyse_video").click().run()
    wait_until_done(at)
    (session,) = store.list_sessions().to_dict("records")
    assert (session["participant"], session["tags"]) == ("P09", {"condition": "B"})
