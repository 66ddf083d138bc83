"""The live video never waits for the models: LiveSession's mailbox, analysis thread, overlay,
stream slots, and the WebRTC media sockets that follow the server's address."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import asyncio
import threading
import time

import numpy as np
import pytest

from core.results import FaceResult, FrameResult
from core.live_session import FairGate, FrameMailbox, LiveSession, StreamSlots, max_streams_from_env
from core.models import ActiveModels
from core.overlay import MovingOverlay
from core.registry import ModelRegistry
from core.store import SessionStore
from tests.test_tracking import read_frames

MODEL_DELAY_S = 0.25  # a model far slower than a 30 fps camera


class SlowModel:
    """A real TaskModel that sleeps before every prediction, like a heavy network on a busy CPU."""

    def __init__(self, model, delay_s: float) -> None:
        self.model, self.delay_s = model, delay_s
        self.spec, self.entry_id, self.task = model.spec, model.entry_id, model.task
        self.calls = 0

    def prepare(self, *args, **kwargs):
        return self.model.prepare(*args, **kwargs)

    def predict(self, batch):
        self.calls += 1
        time.sleep(self.delay_s)
        return self.model.predict(batch)


@pytest.fixture(scope="module")
def active_models(tmp_path_factory) -> ActiveModels:
    return ActiveModels(registry=ModelRegistry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_frames("multi_face_640x480.avi", 40, step=1, start=30)


def _session(models, store, **kwargs) -> LiveSession:
    options = {"slots": StreamSlots(2), "gate": FairGate(1), "max_fps": 0}
    options.update(kwargs)
    return LiveSession(models, store_factory=lambda: store, **options)


def test_the_callback_returns_at_once_while_a_slow_model_runs(active_models, frames):
    """30 fps in, a 0.25 s model: no frame waits for the model (a submit that did would take
    >= 0.25 s; how fast the callback is on an idle machine is benchmarks.live's to print),
    analysis takes the newest frame it can, and only analysed frames are recorded, with their
    capture times."""
    slow = {task: SlowModel(model, MODEL_DELAY_S if task == "emotion" else 0.0)
            for task, model in active_models.get().items()}
    store = SessionStore()
    live = _session(slow, store)
    live.arm()
    captured, returned_ms, drawn = [], [], 0
    start = time.time()
    for i in range(60):                                 # 2 s of a 30 fps camera
        time.sleep(max(0.0, start + i / 30 - time.time()))
        frame = frames[i % len(frames)]
        t = time.time()
        captured.append(t)
        t0 = time.perf_counter()
        out = live.submit(frame, t)
        returned_ms.append((time.perf_counter() - t0) * 1000)
        if out is not None:
            assert out.shape == frame.shape and out is not frame
            drawn += 1
    assert live.wait_idle(10)
    print(f"submit median {np.median(returned_ms):.2f} ms, max {max(returned_ms):.2f} ms")
    assert max(returned_ms) < MODEL_DELAY_S * 1000 / 2, returned_ms  # never waited for a prediction
    stats = live.channel.snapshot()
    analysed = stats.frames
    assert 2 <= analysed <= 2.0 / MODEL_DELAY_S + 2     # the model's pace, not the camera's
    assert stats.video_frames >= 55 and stats.video_fps > 20   # the video kept the camera's rate
    assert stats.fps < 6
    assert drawn >= 30                                  # later frames carry the latest boxes
    assert live.mailbox.dropped >= 60 - analysed - 2    # the rest were dropped, not queued
    session_id = live.session_id
    live.stop()
    rows = store.results(session_id)
    assert store.get_session(session_id)["frame_count"] == analysed   # every analysed frame, no other
    stamps = sorted(set(rows["timestamp"]))
    assert analysed - 1 <= len(stamps) <= analysed      # (a face gets its ID on its second sighting)
    assert set(rows["frame_index"]) <= set(range(analysed))
    for stamp in stamps:                                 # each one a real capture time, none invented
        assert min(abs(stamp - c) for c in captured) < 1e-3
    assert len(rows) / analysed >= 2                     # the clip's faces, on the analysed frames


def test_stop_drops_the_waiting_frame_and_ends_the_session(active_models, frames):
    store = SessionStore()
    live = _session(active_models, store)
    live.arm()
    for frame in frames[:10]:
        live.submit(frame)
        time.sleep(0.03)
    assert live.wait_idle(10) and live.recording
    session_id = live.stop()
    count = len(store.results(session_id))
    live.submit(frames[0])                               # a frame after STOP: analysed, never recorded
    assert live.wait_idle(10)
    assert len(store.results(session_id)) == count
    assert store.get_session(session_id)["status"] == "ended"


def test_a_stream_beyond_the_limit_is_busy_and_costs_the_others_nothing(active_models, frames):
    slots = StreamSlots(1)
    store = SessionStore()
    first, second = (_session(active_models, store, slots=slots) for _ in range(2))
    first.submit(frames[0])
    assert first.wait_idle(10)
    assert second.submit(frames[0]) is None and second.busy      # refused: passed through untouched
    assert second.mailbox.posted == 0 and second.channel.snapshot().frames == 0
    assert not slots.free_for(second) and slots.free_for(first)
    first.stop()                                                 # a slot frees...
    assert slots.free_for(second)
    second.submit(frames[1])                                     # ...and the waiting tab gets it
    assert not second.busy and second.wait_idle(10) and second.channel.snapshot().frames == 1
    assert StreamSlots(0).acquire(object())                      # 0: no limit


def test_a_silent_stream_loses_its_slot():
    slots = StreamSlots(1, stale_s=0.05)
    a, b = object(), object()
    assert slots.acquire(a) and not slots.acquire(b)
    time.sleep(0.1)                                              # a's tab vanished without a STOP
    assert slots.acquire(b) and not slots.holds(a)


def test_max_streams_from_env(monkeypatch):
    monkeypatch.delenv("FACESENSE_MAX_STREAMS", raising=False)
    assert max_streams_from_env() == 2
    monkeypatch.setenv("FACESENSE_MAX_STREAMS", "5")
    assert max_streams_from_env() == 5
    monkeypatch.setenv("FACESENSE_MAX_STREAMS", "lots")
    assert max_streams_from_env() == 2


def test_mailbox_keeps_only_the_newest_frame():
    box = FrameMailbox()
    for i in range(5):
        box.post(np.full((8, 8, 3), i, np.uint8), float(i))
    frame, t = box.take(0)
    assert t == 4.0 and frame[0, 0, 0] == 4 and box.dropped == 4
    assert box.take(0.01) is None
    assert not box.wait_idle(0.01)           # taken, not done yet
    box.done()
    assert box.wait_idle(0.01)


def test_the_gate_takes_turns_fairly():
    gate, order, lock = FairGate(1), [], threading.Lock()

    def worker(name):
        for _ in range(3):
            with gate.turn():
                with lock:
                    order.append(name)
                time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(order) == list("aaabbb")
    assert "aaa" not in "".join(order) and "bbb" not in "".join(order)   # neither starves the other


def test_overlay_boxes_follow_each_face_between_analyses():
    overlay = MovingOverlay(max_age_s=1.0, max_extrapolate_s=0.3, smoothing=0.0)

    def result(t, x):
        return FrameResult(0, t, [FaceResult(1, (x, 50, 40, 40), None, None, None, None)], {})

    assert overlay.faces_at(10.0) is None
    overlay.update(result(10.0, 100))
    overlay.update(result(10.1, 110))                   # 100 px/s to the right
    faces, held, t = overlay.faces_at(10.2)
    assert t == 10.1 and faces[0].box == (120, 50, 40, 40)
    assert overlay.faces_at(10.6)[0][0].box == (140, 50, 40, 40)   # at most 0.3 s ahead
    assert overlay.faces_at(11.2) is None               # too old: nothing drawn
    frame = np.zeros((240, 320, 3), np.uint8)
    assert overlay.draw(frame, 10.15) == 10.1 and frame.any()
    overlay.clear()
    assert overlay.faces_at(10.2) is None


# -- WebRTC media sockets follow the server's address --------------------------------------

def _gathered_hosts() -> set[str]:
    import aioice

    async def gather():
        connection = aioice.Connection(ice_controlling=True)
        try:
            await connection.gather_candidates()
            return {c.host for c in connection.local_candidates}
        finally:
            await connection.close()

    return asyncio.run(gather())


@pytest.fixture
def restore_aioice():
    import aioice.ice as ice

    original = ice.get_host_addresses
    yield
    ice.get_host_addresses = original


def test_ice_gathers_on_the_server_address_only(restore_aioice):
    import aioice.ice as ice

    from core.webrtc_network import follow_server_address, ice_host_addresses

    everywhere = getattr(ice, "_facesense_original_get_host_addresses", ice.get_host_addresses)(True, True)
    follow_server_address("localhost")                  # .streamlit/config.toml's default
    assert _gathered_hosts() == {"127.0.0.1"}
    follow_server_address("127.0.0.1")
    assert _gathered_hosts() == {"127.0.0.1"}
    follow_server_address("0.0.0.0")                    # all interfaces: aioice's own choice
    assert _gathered_hosts() == set(everywhere)
    lan = [a for a in everywhere if ":" not in a]
    if lan:                                             # a LAN deployment: its LAN address only
        follow_server_address(lan[0])
        assert _gathered_hosts() == {lan[0]}
    assert ice_host_addresses(None, lambda: ["10.0.0.2"]) == ["10.0.0.2"]   # unset: everywhere
    assert ice_host_addresses("192.168.1.7", lambda: ["10.0.0.2"]) == ["192.168.1.7"]
    assert ice_host_addresses("::1", lambda: []) == ["127.0.0.1"]
    assert ice_host_addresses("localhost", lambda: [], use_ipv4=False) == ["::1"]


def test_video_frames_convert_both_ways_like_pyav(frames):
    import av

    from core.live_session import bgr_to_video_frame, video_frame_to_bgr

    frame = av.VideoFrame.from_ndarray(frames[0], format="bgr24").reformat(format="yuv420p")  # as decoded
    ours, pyav = video_frame_to_bgr(frame).astype(int), frame.to_ndarray(format="bgr24").astype(int)
    assert ours.shape == (480, 640, 3) and np.abs(ours - pyav).mean() < 2
    back = bgr_to_video_frame(frames[0])
    assert back.format.name == "yuv420p" and (back.width, back.height) == (640, 480)
    assert np.abs(back.to_ndarray(format="bgr24").astype(int) - frames[0].astype(int)).mean() < 4
