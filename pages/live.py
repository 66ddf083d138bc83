"""Live page: the webcam in the browser, every face boxed and labelled in real time.

A thin view over :mod:`core.live_session`. streamlit-webrtc streams the camera to
this server (WebRTC on the server's own address: loopback by default, no STUN/TURN server
needed) and calls ``video_frame_callback`` on its worker thread for each frame; the callback
hands the frame to the tab's analysis thread and returns it at once with the latest overlay,
so the video runs at the camera's rate whatever the models cost. Statistics reach the page
through a thread-safe channel that a fragment polls, so no Streamlit call ever runs on the
video or analysis threads. Each START..STOP is recorded as one session for the Statistics page.
"""
import core  # noqa: F401  (first: safe native-library import order)

import logging
import time

import av
import pandas as pd
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer
from streamlit_webrtc.session_info import get_this_session_info

from core.analyzer import AnalyzerSettings, limit_inference_threads
from core.config import TASKS, app_paths
from core.detection import DETECTOR_LABELS, DetectorSettings, detector_notice
from core.live_channel import LiveStats
from core.live_session import (
    LIVE_ATTRIBUTE_EVERY,
    STREAM_SLOTS,
    LiveSession,
    bgr_to_video_frame,
    ice_servers_from_text,
    limit_live_threads,
    video_frame_to_bgr,
)
from core.models import ActiveModels
from core.overlay import gender_text
from core.session_charts import live_valence_figure
from core.store import SessionStore
from core.tags import TagError, parse_tags
from core.webrtc_network import follow_server_address
from pages.components.server_address import with_real_address
from pages.components.login import require_login
from pages.components.server_tuning import keep_models_warm

require_login()  # a fresh server's first request may run this page without app.py

log = logging.getLogger(__name__)

WEBRTC_KEY = "facesense-live"
SESSION_KEY = "facesense-live-session"
PANEL_REFRESH_S = 1.0
MAX_PRESETS = 9  # preset marker buttons, on the keys 1..9
BUSY_RETRY_S = 2.0
CAMERA_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}
CAMERA_HELP = """**Camera trouble?** The player names the browser's error:
- **NotFoundError** (*Requested device not found*) or **NotReadableError**: no camera is connected, or
  another app is using it. Connect a webcam or close the other app, then press START again.
- **NotAllowedError** (*Permission denied*): camera access was refused. Allow the camera for this site
  (camera icon in the address bar), then press START again.
- **Media API not available**: browsers open cameras only on secure pages. Use http://localhost:8501 on
  this computer, or HTTPS from another one."""
MESSAGES = {  # shown by the player's device form when the browser cannot open a camera
    "device_not_available": "No camera found, or another app is using it. Connect a webcam, close other "
                            "apps that use it, then press START again",
    "device_access_denied": "Camera access was refused. Allow the camera for this site (the camera icon "
                            "in the address bar), then press START again",
    "media_api_not_available": "This browser cannot open a camera on this address. Open FaceSense at "
                               "http://localhost:8501 on this computer, or over HTTPS from another one",
    "device_ask_permission": "Please allow FaceSense to use your camera",
}
CAMERA_HELP, MESSAGES = with_real_address(CAMERA_HELP), {k: with_real_address(v) for k, v in MESSAGES.items()}


@st.cache_resource(show_spinner="Loading the face models…")
def _models() -> ActiveModels:
    limit_inference_threads(1)  # steadier per-frame latency next to the video codecs
    limit_live_threads(1)       # OpenCV on one thread too: the video coder keeps a core
    return ActiveModels()


@st.cache_resource(show_spinner=False)
def _media_sockets(server_address: str | None) -> str | None:
    """WebRTC's UDP sockets on the address the server serves (loopback by default)."""
    follow_server_address(server_address)
    return server_address


@st.cache_resource(show_spinner=False)
def _store(url: str) -> SessionStore:
    return SessionStore(url)


def _sidebar() -> tuple[AnalyzerSettings, list[dict]]:
    """Analyzer settings and ICE servers chosen in the sidebar."""
    with st.sidebar:
        st.subheader("Live analysis")
        sensitivity = st.slider(
            "Detector sensitivity", 0, 100, 50, step=5, key="live_sensitivity",
            help="Higher finds faces in poor light or turned a little, but also more false boxes.")
        min_face = st.slider(
            "Minimum face size (px)", 24, 240, DetectorSettings().min_face, step=4, key="live_min_face",
            help="Smaller faces (far from the camera) are ignored; larger values are faster.")
        window = st.slider(
            "Smoothing window (frames)", 0, 30, AnalyzerSettings().smoothing_window, key="live_window",
            help="Each face's emotion is averaged over its last N frames, its age and gender over their "
                 "last N estimates: steadier labels, about N/2 frames of lag. 0 = off.")
        every = st.slider(
            "Age and gender every (analysed frames)", 1, 30, LIVE_ATTRIBUTE_EVERY, key="live_every",
            help="Age and gender do not change while a person stays in view: each face is re-estimated "
                 "every N analysed frames (10: about once a second), beside the video rather than in its "
                 "way, and keeps its estimate in between. 1 = every analysed frame; lower costs more CPU.")
        kinds = list(DETECTOR_LABELS)
        kind = st.selectbox(
            "Face detector", kinds, index=kinds.index("yunet") if "yunet" in kinds else 0,
            format_func=DETECTOR_LABELS.get, key="live_detector",
            help="The CNN finds turned, small and poorly lit faces the Haar cascade misses, and gives "
                 "each face a confidence and a head pose.")
        st.caption("Models")
        tasks = tuple(t for t in TASKS if st.checkbox(t.capitalize(), value=True, key=f"live_task_{t}"))
        with st.expander("Connection (remote use)"):
            ice_text = st.text_area(
                "ICE servers", "", key="live_ice", placeholder="stun:stun.example.org:3478\n"
                "turn:turn.example.org:3478 user secret",
                help="Not needed on this computer or a LAN. To reach FaceSense over the internet, "
                     "add STUN/TURN servers, one per line: URL [USERNAME CREDENTIAL].")
        try:
            ice_servers = ice_servers_from_text(ice_text)
        except ValueError as exc:
            st.error(f"ICE servers ignored: {exc}")
            ice_servers = []
    detector = DetectorSettings.from_sensitivity(sensitivity / 100, min_face=min_face, kind=kind)
    return AnalyzerSettings(detector=detector, smoothing_window=window, tasks=tasks,
                            attribute_every=every), ice_servers


def _study_sidebar() -> tuple[str, dict[str, str], list[str]]:
    """Participant, tags and preset marker labels, set before START (they apply while recording too)."""
    with st.sidebar:
        st.subheader("Study")
        participant = st.text_input("Participant", key="live_participant", max_chars=200, placeholder="P07",
                                    help="Stored with each session recorded from now on.")
        tags_text = st.text_input("Tags", key="live_tags", placeholder="condition=A; site=Leeds",
                                  help="key=value labels, separated by ';'. The Statistics page compares "
                                       "groups of sessions by them.")
        presets_text = st.text_area("Marker presets (one per line, up to 9)", key="live_marker_presets",
                                    placeholder="instructions\nscreen 1\nscreen 2",
                                    help="Shown as buttons while recording; keys 1–9 press them.")
    try:
        tags = parse_tags(tags_text)
    except TagError as exc:
        st.sidebar.error(f"Tags not applied: {exc}")
        tags = None
    presets = [line.strip()[:200] for line in presets_text.splitlines() if line.strip()]
    if len(presets) > MAX_PRESETS:
        st.sidebar.warning(f"Only the first {MAX_PRESETS} presets get buttons ({len(presets)} given).")
    return participant, tags, presets[:MAX_PRESETS]


def _add_marker(live: LiveSession, label: str) -> None:
    try:
        marker_id = live.add_marker(label)
    except (RuntimeError, ValueError, KeyError) as exc:
        st.warning(f"Marker not added: {exc}")
    else:
        st.session_state["last_marker"] = (marker_id, label.strip(), live.session_id)


def _marker_controls(live: LiveSession, presets: list[str]) -> None:
    """Event markers while recording: a typed label, or a preset (button or key 1-9). A fragment, so a
    press reruns only this part; each press is stored at once (LiveSession.add_marker)."""
    with st.form("marker_form", clear_on_submit=True, border=False):
        typed, button = st.columns([4, 1], vertical_alignment="bottom")
        label = typed.text_input("Marker", key="marker_label", max_chars=200, placeholder="what happens now",
                                 help="Type a label and press Enter or Add marker.")
        if button.form_submit_button("Add marker", key="add_marker", icon=":material/flag:"):
            if label.strip():
                _add_marker(live, label)
            else:
                st.warning("Type a label for the marker first.")
    if presets:
        for index, (column, preset) in enumerate(zip(st.columns(len(presets)), presets), start=1):
            if column.button(preset, key=f"marker_preset_{index}", shortcut=str(index), width="stretch",
                             help=f"Add the marker “{preset}” (key {index})"):
                _add_marker(live, preset)
        st.caption("Keys 1–9 work while the focus is on the page, not in the video player or a text field "
                   "(click an empty part of the page first).")
    last = st.session_state.get("last_marker")
    if last is not None and last[2] == live.session_id:
        st.caption(f"Marker #{last[0]} “{last[1]}” saved.")


def _live_session(settings: AnalyzerSettings) -> LiveSession:
    """This tab's analyzer/recorder, created once with the cached models."""
    live = st.session_state.get(SESSION_KEY)
    if live is None:
        store = _store(app_paths().database_url)
        live = st.session_state[SESSION_KEY] = LiveSession(_models(), settings, store_factory=lambda: store)
    live.update_settings(settings)
    live.refresh_models()  # a model activated on the Training page is loaded here, not on the video thread
    return live


def _has_server_session() -> bool:
    """streamlit-webrtc needs a real server session; Streamlit's AppTest harness has a mock one."""
    try:
        return get_this_session_info() is not None
    except AttributeError:
        return False


def _frame_callback(live: LiveSession):
    """Returns each frame at once: analysis runs on the tab's own thread (LiveSession.submit)."""
    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        captured_at = time.time()
        try:
            image = live.submit(video_frame_to_bgr(frame), captured_at)
            return frame if image is None else bgr_to_video_frame(image)
        except Exception:  # noqa: BLE001  (conversion failed: pass the frame through, keep streaming)
            log.exception("live frame could not be converted")
            return frame

    return callback


def _busy_message() -> str:
    return (f"FaceSense is busy: it already analyses {STREAM_SLOTS.in_use()} live stream(s), as many as this "
            f"machine serves at once (FACESENSE_MAX_STREAMS={STREAM_SLOTS.limit}). START comes back here as "
            "soon as one of them stops.")


def _wait_for_a_slot(live: LiveSession) -> None:
    """Shown instead of the player while every stream slot is taken by other tabs."""
    st.warning(_busy_message(), icon="⏳")
    if STREAM_SLOTS.free_for(live):
        st.rerun()


def _faces_table(stats: LiveStats) -> pd.DataFrame:
    rows = []
    for face in stats.faces:
        rows.append({
            "Face": f"#{face.face_id}",
            "Emotion": face.emotion or "–",
            "Confidence": None if face.confidence is None else f"{100 * face.confidence:.0f}%",
            "Valence": None if face.valence is None else f"{face.valence:+.2f}",
            "Age": None if face.age is None else f"{face.age:.0f}",
            "Gender": None if face.gender is None else gender_text(face.gender, short=False),
            "Detector confidence": None if face.detector_confidence is None
            else f"{100 * face.detector_confidence:.0f}%",
            "Head pose (yaw/pitch/roll)": None if face.pose is None
            else " / ".join(f"{angle:+.0f}°" for angle in face.pose),
            "Analysed/s": f"{face.analysed_fps:.1f}",
        })
    return pd.DataFrame(rows)


def _panel(live: LiveSession, playing: bool) -> None:
    """The live numbers, redrawn every second from the channel while streaming."""
    if playing and live.busy:  # refused a stream slot: drop the player, say why
        st.rerun()
    live.refresh_models()
    stats = live.channel.snapshot()
    video, analysed = st.columns(2)
    latency, lag = st.columns(2)
    faces, frames = st.columns(2)
    video.metric("Video", f"{stats.video_fps:.1f} fps",
                 help="Frames per second returned to the browser: the camera's rate, whatever the models cost")
    analysed.metric("Analysed", f"{stats.fps:.1f} fps", help="Frames per second that went through the models "
                    "(the newest frame each time the analysis is free; the others show the latest boxes, moved "
                    "with each face). Per face: the table's Analysed/s.")
    latency.metric("Latency", f"{stats.latency_ms:.0f} ms", help=f"Processing time per analysed frame; "
                   f"95th percentile {stats.latency_p95_ms:.0f} ms over the last seconds")
    lag.metric("Overlay lag", f"{stats.overlay_lag_p95_ms:.0f} ms", help="95th percentile over the last "
               f"seconds of how much older the analysed frame whose boxes are drawn is than the video frame "
               f"they are drawn on (median {stats.overlay_lag_ms:.0f} ms); capture to analysis ready: median "
               f"{stats.delay_ms:.0f} ms, p95 {stats.delay_p95_ms:.0f} ms")
    faces.metric("Faces", len(stats.faces))
    frames.metric("Frames", stats.frames, help="Frames analysed (and recorded) in this session")
    if stats.failed:
        st.caption(f"{stats.failed} frame(s) could not be processed and were skipped "
                   f"(last: {stats.last_error})")
    if stats.faces:
        st.dataframe(_faces_table(stats), hide_index=True, width="stretch")
    if stats.valence_history:
        st.plotly_chart(live_valence_figure(stats.valence_history), key="live_valence",
                        config={"displayModeBar": False})
    elif playing:
        st.info("No face in view." if stats.frames else "Waiting for the first frames…")
    if playing and stats.age_s is not None and stats.age_s > 5:
        st.warning(f"No frame for {stats.age_s:.0f} s: the connection may have dropped. Press STOP, then START.")
    if live.recording_error:
        st.warning(live.recording_error)
    if live.recording:
        st.success(f"Recording session #{live.session_id}")
    elif live.last_session_id is not None:
        st.caption(f"Session #{live.last_session_id} saved: open **Statistics** to chart or export it.")


keep_models_warm()  # also when this page is the server's first run (legacy pages/ mode)
st.title("Live")
st.caption("Every face the camera sees, boxed and labelled with emotion, age and gender. "
           "Press **START** to begin; each START..STOP is saved as a session.")
settings, ice_servers = _sidebar()
participant, tags, presets = _study_sidebar()
_media_sockets(st.get_option("server.address"))
try:
    live = _live_session(settings)
except Exception as exc:  # noqa: BLE001  (missing or corrupt model files)
    st.error(f"The face models could not be loaded: {exc}. Restore the defaults on the Training page.")
    st.stop()
try:
    live.set_study(participant, live.tags if tags is None else tags)  # bad tags: the last good ones stay
except (KeyError, ValueError) as exc:
    st.warning(f"Participant and tags not stored: {exc}")
notice = detector_notice()  # set once the analyzer has tried the CNN detector
if notice:
    st.warning(notice)
if not settings.tasks:
    st.info("No model selected: faces are boxed and followed, nothing is estimated.")

video_column, panel_column = st.columns([3, 2])
refused = live.busy  # this tab's stream was refused a slot (all taken): stop it and say why
if not refused and not STREAM_SLOTS.free_for(live):  # every slot taken by other tabs: no player
    with video_column:
        st.fragment(_wait_for_a_slot, run_every=BUSY_RETRY_S)(live)
    st.stop()
if not _has_server_session():
    video_column.info("The video player needs a browser connected to the FaceSense server.")
    st.stop()
with video_column:
    ctx = webrtc_streamer(
        key=WEBRTC_KEY,
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": ice_servers},  # explicit: never a default public STUN server
        media_stream_constraints=CAMERA_CONSTRAINTS,
        video_frame_callback=_frame_callback(live),
        on_video_ended=live.stop_soon,  # called on the WebRTC event loop: never block it
        async_processing=True,  # the callback on the stream's own thread, off Streamlit's event loop
        translations=MESSAGES,
        video_html_attrs={"autoPlay": True, "controls": False, "muted": True, "style": {"width": "100%"}},
        desired_playing_state=False if refused else None,  # refused: the browser ends the stream
    )
    if refused:
        st.warning(_busy_message(), icon="⏳")
playing = bool(ctx.state.playing) and not refused
if playing:
    live.arm()
    with video_column:
        st.fragment(_marker_controls)(live, presets)
else:
    live.stop()
with panel_column:
    st.fragment(_panel, run_every=PANEL_REFRESH_S if playing else None)(live, playing)
if not playing:
    with video_column:
        st.caption(CAMERA_HELP)
    panel_column.caption("The camera stays on this computer: video goes from the browser to the "
                         "FaceSense server on this machine and back, nothing is sent anywhere else.")
