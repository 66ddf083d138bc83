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
        "Emotion over time (all faces)", "Valence over time (all faces)", "Emotion share (all faces)",
        "Gender share (all faces)", "Estimated age (all faces)"]
    timeline = figs[0]
    assert [t["name"] for t in timeline["data"]] == list(stats.EMOTIONS)
    points = [len(values(t["x"])) for t in timeline["data"]]
    assert 100 <= min(points) and max(points) <= 600  # aggregated: 2,520 rows -> a few hundred points
    assert len(at.get("download_button")) == 4  # per-frame, summary, markers, segments

    at.selectbox(key=f"face_a_{long_id}").set_value(3).run()
    assert not at.exception
    figs = figures(at)
    assert figs[0]["layout"]["title"]["text"] == "Emotion over time (face #3)"
    share = stats.emotion_share(stats.face_emotion_counts(store, long_id), 3)
    assert sum(values(figs[2]["data"][0]["customdata"])) == share["observations"].sum() == 720  # away 180 frames


def test_compare_two_sessions_side_by_side(seeded):
    _, long_id, short_id = seeded
    at = run_page()
    at.toggle(key="compare").set_value(True).run()
    assert not at.exception
    assert (at.selectbox(key="session_a").value, at.selectbox(key="session_b").value) == (short_id, long_id)
    assert [m.value for m in at.metric if m.label == "Faces"] == ["1", "3"]
    assert len(figures(at)) == 10  # five per session: emotion, valence, share, gender, age
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
    for path, message in [(tmp_path / "missing.mp4", "not found"),
                          (tmp_path / "notes.txt", "notes.txt: not a video FFmpeg can read"),
                          (broken, "broken.mp4: not a video FFmpeg can read")]:
        if path.suffix == ".txt":
            path.write_text("hello")
        at.text_input(key="video_path").set_value(str(path)).run()
        at.button(key="analyse_video").click().run()
        assert not at.exception
        assert [e.value for e in at.error if message in e.value], [e.value for e in at.error]
        assert len(at.error) == 1 and "Errno" not in at.error[0].value  # one message, the user's words
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


# -- issue 21: what a new user tripped over -------------------------------------------------

class FakeAnalyzer:
    """Stands in for the real analyzer (no TensorFlow): finds ``faces`` faces per frame, slowly if asked."""

    def __init__(self, faces: int = 0, delay_s: float = 0.0):
        from core.analyzer import AnalyzerSettings

        self.settings, self.faces, self.delay_s, self.index = AnalyzerSettings(), faces, delay_s, 0

    def update_settings(self, settings):
        self.settings = settings

    def model_versions(self):
        return {"emotion": "fake", "age": "fake", "gender": "fake"}

    def reset(self):
        self.index = 0

    def analyze(self, image, timestamp=None):
        from core.results import FaceResult, FrameResult

        time.sleep(self.delay_s)
        self.index += 1
        probs = np.full(7, 1 / 7, np.float32)
        return FrameResult(self.index - 1, timestamp, [FaceResult(face_id=j + 1, box=(10, 10, 40, 40),
                                                                  emotion_probs=probs, emotion="neutral", age=30.0,
                                                                  gender=0.5) for j in range(self.faces)],
                           {"total": 1.0})

    def stage(self, image, timestamp):  # a file's path: stage frames, then finish them together
        return self.analyze(image, timestamp)

    def finish(self, staged):
        return list(staged)


@pytest.fixture
def fake_models(monkeypatch):
    """Patch the page's analyzer factory (the page imports it afresh on every run)."""
    import core.video_analysis as va

    made = {}

    def install(**kwargs):
        def factory(detector="yunet", detector_settings=None):
            made["detector"] = detector_settings
            return FakeAnalyzer(**kwargs)
        monkeypatch.setattr(va, "default_analyzer", factory)
        return made
    return install


def wmv_clip(shared, target: Path, frames: int = 10) -> Path:
    """A few frames of the single-face clip as Windows Media Video 2, as a webcam recorder writes it."""
    import av
    from fractions import Fraction

    with av.open(str(shared("video", "single_face_640x480.avi"))) as src, av.open(str(target), "w") as dst:
        stream = dst.add_stream("wmv2", rate=Fraction(15, 1))
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 15)
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return target


def wait_until_done(at: AppTest, timeout: float = 60) -> AppTest:
    deadline = time.monotonic() + timeout
    while at.get("progress") and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def messages(at: AppTest) -> list[tuple[str, str]]:
    """The video tab's messages (the last tab: the other tabs have hints of their own)."""
    tab = at.tabs[-1] if len(at.tabs) else at
    return [(kind, el.value) for kind in ("success", "warning", "error", "info") for el in getattr(tab, kind)]


def test_uploader_accepts_any_video_and_a_wmv_path_is_analysed(seeded, shared, tmp_path, fake_models):
    """21.1: the uploader filters no type (the file is opened instead); a .wmv is analysed.
    21.4: a video whose frames have no face gets a warning with the count, not a green success."""
    store, _, _ = seeded
    fake_models(faces=0)
    clip = wmv_clip(shared, tmp_path / "backlit webcam.wmv")
    at = run_page()
    uploader = at.get("file_uploader")[0]
    assert list(uploader.proto.type) == []  # no extension filter: any file reaches probe()
    assert "wmv" in uploader.proto.help and "1,024 MB" in uploader.proto.help
    at.text_input(key="video_path").set_value(str(clip)).run()
    at.button(key="analyse_video").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_until_done(at)
    assert not at.success
    (warning,) = [m for k, m in messages(at) if k == "warning"]
    assert "backlit webcam.wmv: session #3 with 10 frames" in warning
    assert "10 of 10 frames had no face" in warning and "Detector settings" in warning
    assert store.get_session(3)["source_path"] == str(clip)


def test_each_tab_sees_its_own_job_and_the_next_action_clears_it(seeded, shared, tmp_path, fake_models):
    """21.3: a finished job's message belongs to its tab and goes with the next action."""
    fake_models(faces=1)
    clip = wmv_clip(shared, tmp_path / "clip.wmv")
    first = run_page()
    first.text_input(key="video_path").set_value(str(clip)).run()
    first.button(key="analyse_video").click().run()
    wait_until_done(first)
    assert [k for k, _ in messages(first)] == ["success"]
    assert "clip.wmv: session #3" in first.success[0].value and "from your click" in first.success[0].value

    other_tab = run_page()
    assert messages(other_tab) == []  # another browser tab never sees this tab's job

    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(1).bytes(5000))
    first.text_input(key="video_path").set_value(str(tmp_path / "random.mp4")).run()
    assert messages(first) == []  # a new path: the old success is gone
    first.button(key="analyse_video").click().run()
    assert messages(first) == [("error", "random.mp4: not a video FFmpeg can read (is the file complete and a "
                                         "real video?)")]


def test_one_analysis_per_server_without_showing_another_tabs_job(seeded, shared, tmp_path, fake_models):
    fake_models(faces=1, delay_s=0.5)
    clip = wmv_clip(shared, tmp_path / "private name.wmv", frames=30)
    first = run_page()
    first.text_input(key="video_path").set_value(str(clip)).run()
    first.button(key="analyse_video").click().run()
    assert first.get("progress")
    other_tab = run_page()
    assert not other_tab.get("progress")
    other_tab.text_input(key="video_path").set_value(str(clip)).run()
    other_tab.button(key="analyse_video").click().run()
    assert [k for k, _ in messages(other_tab)] == ["warning"]
    assert "Another video is being analysed" in other_tab.warning[0].value
    assert "private name" not in other_tab.warning[0].value
    first.button(key="cancel_video").click().run()
    wait_until_done(first)
    assert messages(first) == [("info", "Analysis of private name.wmv cancelled; nothing was saved.")]


def test_progress_moves_while_the_models_load(seeded, shared, tmp_path, monkeypatch):
    """21.5: the bar is above 0% and says what happens while the models load."""
    import core.video_analysis as va

    def slow_factory(detector="yunet", detector_settings=None):
        time.sleep(3.0)
        return FakeAnalyzer(faces=1)
    monkeypatch.setattr(va, "default_analyzer", slow_factory)
    clip = wmv_clip(shared, tmp_path / "clip.wmv")
    at = run_page()
    at.text_input(key="video_path").set_value(str(clip)).run()
    at.button(key="analyse_video").click().run()
    time.sleep(1.5)
    at.run()
    (bar,) = at.get("progress")
    assert bar.proto.value > 0 and "loading the models" in bar.proto.text
    wait_until_done(at)
    text = at.success[0].value
    waited = float(text.split(" took ")[1].split(" s")[0])
    assert waited >= 3.0 and "s loading the models" in text


def test_detector_settings_reach_the_analysis(seeded, shared, tmp_path, fake_models):
    made = fake_models(faces=1)
    clip = wmv_clip(shared, tmp_path / "crowd.wmv")
    at = run_page()
    at.slider(key="video_sensitivity").set_value(90)
    at.toggle(key="video_full_res").set_value(True)
    at.text_input(key="video_path").set_value(str(clip)).run()
    at.button(key="analyse_video").click().run()
    wait_until_done(at)
    assert made["detector"].detect_width == 0 and made["detector"].min_confidence == pytest.approx(0.36)
