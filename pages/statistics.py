"""Statistics page: chart one session or compare two, export CSV, manage sessions, analyse a video.

A thin view: aggregates come from :mod:`core.session_stats` (computed in SQL, so an
hour-long session sends a few hundred points to the browser, not 300k rows), figures
from :mod:`core.session_charts`, CSV from :mod:`core.export`, video runs from
:mod:`core.video_analysis` on a background thread that this page polls.
"""
import core  # noqa: F401  (first: safe native-library import order)

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from core import session_charts as charts
from core import session_stats as stats
from core.access import allowed_media_path
from core.config import EMOTIONS, app_paths
from core.detection import DETECTOR_LABELS, DetectorSettings
from core.disk import VIDEO_UPLOAD_MAX_AGE_S, prune
from core.export import frames_csv_bytes, summary_csv_bytes
from core.store import SessionStore
from core.video_analysis import VIDEO_SUFFIXES, VideoError, VideoJob, default_analyzer, probe, start_video_job
from pages.components.login import require_login

require_login()  # a fresh server's first request may run this page without app.py

ALL_FACES = "All faces"


@st.cache_resource(show_spinner=False)
def _store(url: str) -> SessionStore:
    return SessionStore(url)


JOB_KEY = "video_job"  # this browser tab's own job (st.session_state): other tabs never see it


@st.cache_resource(show_spinner=False)
def _server_slot() -> dict:
    """Process-wide: the job that holds this server's one analysis slot (it uses the CPU fully)."""
    return {"job": None, "lock": threading.Lock()}


def _own_job() -> VideoJob | None:
    return st.session_state.get(JOB_KEY)


def _clear_finished() -> None:
    """The next action (a new file, path or name, or Analyse) clears the last finished job's message."""
    job = _own_job()
    if job is not None and not job.running:
        st.session_state.pop(JOB_KEY, None)


@st.cache_data(show_spinner=False, max_entries=32)
def _session_data(url: str, session_id: int, version: tuple) -> dict:
    """Per-face counts, summary and faces table; ``version`` changes whenever new rows arrive."""
    store = _store(url)
    counts = stats.face_emotion_counts(store, session_id)
    start = stats.origin(store, session_id)
    return {"counts": counts, "start": start, "summary": stats.summary(store, session_id, counts),
            "faces": stats.faces_table(counts, start)}


@st.cache_data(show_spinner=False, max_entries=64)
def _face_view(url: str, session_id: int, version: tuple, face_id: int | None, start: float) -> dict:
    """The time- and age-binned data of one face (or all), the two scans a face filter changes."""
    store = _store(url)
    timeline = stats.emotion_timeline(store, session_id, face_id, start=start)
    return {"timeline": timeline, "bucket_s": timeline.attrs.get("bucket_s", 1.0),
            "ages": stats.age_histogram(store, session_id, face_id)}


def _version(row: pd.Series) -> tuple:
    return (int(row["row_count"]), int(row["frame_count"]), str(row["ended_at"]), row["status"], row["name"])


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _label(row: pd.Series) -> str:
    started = row["started_at"].to_pydatetime().astimezone()  # the server's local time
    status = "" if row["status"] == "ended" else f" · {row['status']}"
    return f"#{row['id']} · {row['name']} · {started:%Y-%m-%d %H:%M} · {_duration(row['duration_s'])}{status}"


def _pick_session(sessions: pd.DataFrame, label: str, key: str, default: int = 0) -> pd.Series:
    ids = sessions["id"].tolist()
    rows = sessions.set_index("id", drop=False)
    chosen = st.selectbox(label, ids, index=min(default, len(ids) - 1), key=key,
                          format_func=lambda i: _label(rows.loc[i]))
    return rows.loc[chosen]


def _metrics(summary: stats.SessionSummary) -> None:
    row1, row2 = st.columns(3), st.columns(3)
    row1[0].metric("Duration", _duration(summary.duration_s))
    row1[1].metric("Frames", f"{summary.frames:,}", help=f"{summary.frames_with_faces:,} with at least one face")
    row1[2].metric("Faces", summary.faces, help=f"{summary.observations:,} face observations (faces × frames)")
    top = summary.emotion_share.get(summary.dominant_emotion, 0.0) if summary.dominant_emotion else 0.0
    row2[0].metric("Dominant emotion", summary.dominant_emotion or "–",
                   help=f"dominant in {top:.0%} of observations" if summary.dominant_emotion else None)
    row2[1].metric("Mean age", "–" if summary.mean_age is None else f"{summary.mean_age:.1f} y")
    row2[2].metric("Female share", "–" if summary.female_share is None else f"{summary.female_share:.0%}",
                   help="share of observations with P(female) ≥ 0.5")


def _session_view(url: str, row: pd.Series, key: str, emotions: list[str], smoothing_s: float) -> None:
    session_id = int(row["id"])
    version = _version(row)
    data = _session_data(url, session_id, version)
    face_choice = st.selectbox("Faces", [ALL_FACES, *data["faces"]["face_id"].tolist()], key=f"face_{key}_{session_id}",
                               format_func=lambda f: f if f == ALL_FACES else f"Face #{f}")
    face_id = None if face_choice == ALL_FACES else int(face_choice)
    view = _face_view(url, session_id, version, face_id, data["start"])
    _metrics(data["summary"])
    with st.expander("Source, settings and model versions"):
        if row["source_path"]:
            st.caption(f"Video file: {row['source_path']}")
        st.json({"model_versions": row["model_versions"], "settings": row["settings"]}, expanded=1)
    if row["status"] == "recording":
        st.caption("Still recording: figures include results written so far.")
    elif row["status"] == "ended abnormally":
        st.caption("This session ended abnormally (the app stopped while recording); results up to then are kept.")
    window = max(1, int(round(smoothing_s / view["bucket_s"]))) if smoothing_s > 0 else 1
    who = "all faces" if face_id is None else f"face #{face_id}"
    st.plotly_chart(charts.emotion_timeline_figure(stats.smooth(view["timeline"], window), emotions,
                                                   title=f"Emotion over time ({who})"), key=f"timeline_{key}")
    left, right = st.columns(2)
    share = stats.emotion_share(data["counts"], face_id)
    genders = stats.gender_share(data["counts"], face_id)
    left.plotly_chart(charts.emotion_share_figure(share, title=f"Emotion share ({who})"), key=f"share_{key}")
    right.plotly_chart(charts.gender_share_figure(genders, title=f"Gender share ({who})"), key=f"gender_{key}")
    st.plotly_chart(charts.age_histogram_figure(view["ages"], title=f"Estimated age ({who})"), key=f"age_{key}")
    if not data["faces"].empty:
        st.dataframe(data["faces"], hide_index=True, key=f"faces_{key}", column_config={
            "face_id": "Face", "first_seen_s": st.column_config.NumberColumn("First seen (s)", format="%.1f"),
            "last_seen_s": st.column_config.NumberColumn("Last seen (s)", format="%.1f"),
            "observations": "Frames", "mean_age": st.column_config.NumberColumn("Mean age", format="%.1f"),
            "female_share": st.column_config.NumberColumn("Female share", format="percent"),
            "dominant_emotion": "Dominant emotion"})
    _downloads(url, session_id, row["name"], key)


def _downloads(url: str, session_id: int, name: str, key: str) -> None:
    store = _store(url)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "session"
    left, right = st.columns(2)
    left.download_button("Per-frame CSV", lambda: frames_csv_bytes(store, [session_id]),
                         file_name=f"facesense_{session_id}_{stem}_frames.csv", mime="text/csv",
                         key=f"dl_frames_{key}", on_click="ignore", icon=":material/download:")
    right.download_button("Summary CSV", lambda: summary_csv_bytes(store, [session_id]),
                          file_name=f"facesense_{session_id}_{stem}_summary.csv", mime="text/csv",
                          key=f"dl_summary_{key}", on_click="ignore", icon=":material/download:")


def _comparison_table(url: str, rows: list[pd.Series]) -> None:
    columns = {}
    for row in rows:
        s = _session_data(url, int(row["id"]), _version(row))["summary"]
        columns[f"#{s.session_id} {s.name}"] = {
            "Duration": _duration(s.duration_s), "Frames": f"{s.frames:,}", "Faces": str(s.faces),
            "Dominant emotion": s.dominant_emotion or "–",
            "Mean age": "–" if s.mean_age is None else f"{s.mean_age:.1f}",
            "Female share": "–" if s.female_share is None else f"{s.female_share:.0%}",
            **{f"{e} share": f"{s.emotion_share.get(e, 0.0):.1%}" for e in EMOTIONS},
        }
    st.dataframe(pd.DataFrame(columns), key="comparison")


def charts_tab(url: str, sessions: pd.DataFrame) -> None:
    compare = st.toggle("Compare two sessions", key="compare", disabled=len(sessions) < 2,
                        help="Needs at least two sessions")
    controls = st.columns([3, 1])
    emotions = controls[0].multiselect("Emotions", list(EMOTIONS), default=list(EMOTIONS), key="emotions")
    smoothing_s = controls[1].slider("Smoothing (s)", 0.0, 30.0, 1.0, 0.5, key="smoothing",
                                     help="Centred moving average over the time buckets")
    if not compare:
        _session_view(url, _pick_session(sessions, "Session", "session_a"), "a", emotions, smoothing_s)
        return
    picked = []
    for column, key, default in zip(st.columns(2), ("a", "b"), (0, 1)):
        with column:
            picked.append(_pick_session(sessions, f"Session {key.upper()}", f"session_{key}", default))
    _comparison_table(url, picked)
    for column, row, key in zip(st.columns(2), picked, ("a", "b")):
        with column:
            _session_view(url, row, key, emotions, smoothing_s)


def manage_tab(url: str, sessions: pd.DataFrame) -> None:
    store = _store(url)
    st.dataframe(sessions[["id", "name", "source", "source_path", "started_at", "status", "duration_s",
                           "frame_count", "row_count"]], hide_index=True, key="sessions_table")
    row = _pick_session(sessions, "Session to rename or delete", "manage_session")
    session_id = int(row["id"])
    new_name = st.text_input("New name", value=row["name"], key=f"rename_{session_id}", max_chars=200)
    if st.button("Rename", key="rename"):
        try:
            store.rename_session(session_id, new_name)
        except (ValueError, KeyError) as exc:
            st.error(str(exc))
        else:
            st.rerun()
    if st.button("Delete…", key="delete"):
        st.session_state["confirm_delete"] = session_id
    if st.session_state.get("confirm_delete") == session_id:
        st.warning(f"Delete session #{session_id} “{row['name']}” and its {int(row['row_count']):,} results? "
                   "This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", type="primary", key="confirm_delete_yes"):
            try:
                store.delete_session(session_id)
            except (ValueError, KeyError) as exc:
                st.error(str(exc))
            else:
                st.session_state.pop("confirm_delete", None)
                st.rerun()
        if no.button("Cancel", key="confirm_delete_no"):
            st.session_state.pop("confirm_delete", None)
            st.rerun()
    _delete_many(store, sessions)


def _delete_many(store: SessionStore, sessions: pd.DataFrame) -> None:
    """Erase several sessions in one action, for example every session of one participant."""
    st.divider()
    rows = sessions.set_index("id", drop=False)
    chosen = st.multiselect("Delete several sessions (for example all of one participant)", sessions["id"].tolist(),
                            key="delete_many", format_func=lambda i: _label(rows.loc[i]),
                            help="Erases their results from the database for good; CSV files exported "
                                 "earlier are not touched.")
    if not chosen:
        return
    total = int(rows.loc[chosen, "row_count"].sum())
    if st.button(f"Delete {len(chosen)} sessions…", key="delete_many_ask"):
        st.session_state["confirm_delete_many"] = sorted(chosen)
    if st.session_state.get("confirm_delete_many") != sorted(chosen):
        return
    st.warning(f"Delete {len(chosen)} sessions ({', '.join(f'#{i}' for i in sorted(chosen))}) and their "
               f"{total:,} results? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete them", type="primary", key="delete_many_yes"):
        errors = []
        for session_id in sorted(chosen):
            try:
                store.delete_session(int(session_id))
            except (ValueError, KeyError) as exc:
                errors.append(str(exc))
        st.session_state.pop("confirm_delete_many", None)
        st.session_state.pop("delete_many", None)
        if errors:
            st.error("Not deleted: " + "; ".join(errors))
        else:
            st.rerun()
    if no.button("Cancel", key="delete_many_no"):
        st.session_state.pop("confirm_delete_many", None)
        st.rerun()


def _save_upload(uploaded) -> Path:
    """Copy the upload to a private temp file (keeping only its suffix: odd names are harmless)."""
    folder = app_paths().cache_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    prune(folder, max_age_s=VIDEO_UPLOAD_MAX_AGE_S)  # copies a crash left behind
    handle = tempfile.NamedTemporaryFile(dir=folder, suffix=Path(uploaded.name).suffix.lower(), delete=False)
    with handle:
        shutil.copyfileobj(uploaded, handle, length=1 << 20)
    return Path(handle.name)


def _upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def _start_analysis(url: str, uploaded, server_path: str, name: str, detector: DetectorSettings) -> bool:
    """Validate the input and start the background job; False (with a message shown) if not started."""
    clicked = time.monotonic()
    slot = _server_slot()
    with slot["lock"]:
        if (other := slot["job"]) is not None and other.running:
            st.warning("Another video is being analysed on this server (one at a time: it uses every core). "
                       "Try again when it has finished." if other is not _own_job() else
                       f"{other.label} is still being analysed; wait for it or cancel it.")
            return False
        cleanup = None
        if uploaded is not None:
            path, label = _save_upload(uploaded), uploaded.name
            cleanup = lambda: path.unlink(missing_ok=True)  # noqa: E731
        elif server_path.strip():
            try:  # only inside the configured media folders (FACESENSE_MEDIA_DIRS), after resolving links and ..
                path, label = allowed_media_path(server_path, str(st.get_option("server.address") or "")), None
            except ValueError as exc:
                st.error(str(exc))
                return False
        else:
            st.warning(f"No video to analyse: upload a video file (up to {_upload_limit_mb():,} MB) or type a "
                       "path on this server.")
            return False
        try:
            probe(path, label)
        except VideoError as exc:
            if cleanup:
                cleanup()  # a refused upload leaves nothing on disk
            st.error(str(exc))
            return False
        job = start_video_job(path, lambda: default_analyzer(detector_settings=detector), name=name.strip() or None,
                              source_label=label, cleanup=cleanup, store=_store(url), started=clicked)
        slot["job"] = job
        st.session_state[JOB_KEY] = job
    return True


def _job_status() -> None:
    job = _own_job()
    if job is None:
        return
    if job.running:
        st.progress(job.fraction, text=job.status_text())
        if st.button("Cancel analysis", key="cancel_video"):
            job.cancel()
        return
    if st.session_state.get("video_job_seen") is not job:
        st.session_state["video_job_seen"] = job
        st.rerun(scope="app")  # the new session belongs in the lists above
    level, text = job.outcome()
    getattr(st, level)(text)


def _detector_settings() -> DetectorSettings:
    with st.expander("Detector settings"):
        cols = st.columns(2)
        sensitivity = cols[0].slider("Detector sensitivity", 0, 100, 50, step=5, key="video_sensitivity",
                                     help="Higher finds faces in poor light or turned a little, but also more "
                                          "false boxes.")
        min_face = cols[1].slider("Minimum face size (px)", 10, 240, DetectorSettings().min_face, step=2,
                                  key="video_min_face", help="Smaller faces are ignored.")
        kinds = list(DETECTOR_LABELS)
        kind = cols[0].selectbox("Face detector", kinds, index=kinds.index("yunet") if "yunet" in kinds else 0,
                                 format_func=DETECTOR_LABELS.get, key="video_detector")
        full = cols[1].toggle("Scan at full resolution", value=False, key="video_full_res",
                              help=f"Off: full scans look at a copy {DetectorSettings().detect_width} px wide "
                                   "(faster). On: small, distant faces (a crowd) are found too, more slowly.")
    return DetectorSettings.from_sensitivity(sensitivity / 100, min_face=min_face, kind=kind,
                                             detect_width=0 if full else DetectorSettings().detect_width)


def video_tab(url: str) -> None:
    st.caption("Runs every frame through the same analyzer as the Live page into a new session.")
    uploaded = st.file_uploader("Video file", key="video_upload", on_change=_clear_finished,
                                help=f"Any video FFmpeg decodes ({', '.join(s.lstrip('.') for s in VIDEO_SUFFIXES)}, "
                                     f"…), up to {_upload_limit_mb():,} MB. The file is checked by opening it.")
    server_path = st.text_input("…or a path on this server", key="video_path", on_change=_clear_finished,
                                placeholder="/data/recordings/interview.mp4")
    name = st.text_input("Session name (optional)", key="video_name", max_chars=200, on_change=_clear_finished)
    detector = _detector_settings()
    job = _own_job()
    busy = job is not None and job.running
    if st.button("Analyse video", type="primary", disabled=busy, key="analyse_video"):
        _clear_finished()
        if _start_analysis(url, uploaded, server_path, name, detector):
            st.rerun()  # show the running state: progress, Cancel, Analyse disabled
    st.fragment(_job_status, run_every=1.0 if busy else None)()


st.title("Statistics")
database_url = app_paths().database_url
store = _store(database_url)
store.recover()
all_sessions = store.list_sessions()
charts_, manage_, video_ = st.tabs(["Charts", "Manage sessions", "Analyse a video"])
with charts_:
    if all_sessions.empty:
        st.info("No sessions yet: record one on the Live page or analyse a video file.")
    else:
        charts_tab(database_url, all_sessions)
with manage_:
    if all_sessions.empty:
        st.info("No sessions to manage yet.")
    else:
        manage_tab(database_url, all_sessions)
with video_:
    video_tab(database_url)
