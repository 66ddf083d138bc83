"""Statistics page: chart one session or compare two, set up a study (markers, segments, baseline,
participant and tags), compare groups, export CSV, manage sessions, analyse a video.

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
from core import study
from core.access import allowed_media_path
from core.config import EMOTIONS, app_paths
from core.detection import DETECTOR_LABELS, DetectorSettings
from core.disk import KEPT_VIDEOS, VIDEO_UPLOAD_MAX_AGE_S, kept_video_path, prune
from core.export import frames_csv_bytes, markers_csv_bytes, segments_csv_bytes, summary_csv_bytes
from core.markers import MarkerFileError, read_markers_csv
from core.store import SessionStore
from core.tags import TagError, format_tags, parse_tags
from core.video_analysis import VIDEO_SUFFIXES, VideoError, VideoJob, default_analyzer, probe, start_video_job
from pages.components.login import require_login

require_login()  # a fresh server's first request may run this page without app.py

ALL_FACES = "All faces"
NO_GROUPING = "(no grouping)"


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


def _study_version(url: str, row: pd.Series) -> tuple:
    """Changes with new rows, any marker edit or a new baseline (markers are a small, indexed query)."""
    marks = _store(url).markers(int(row["id"]))
    baseline = _store(url).get_session(int(row["id"]))["baseline"]
    return (_version(row), tuple(marks.itertuples(index=False, name=None)), repr(baseline))


@st.cache_data(show_spinner=False, max_entries=16)
def _study_data(url: str, session_id: int, version: tuple) -> dict:
    """Rows, segments, baseline and the segment table of one session (loaded once per change)."""
    loaded = study.session_study(_store(url), session_id)
    return {"study": loaded, "segments": study.segment_stats(loaded)}


@st.cache_data(show_spinner=False, max_entries=16)
def _groups(url: str, sessions_key: tuple, key: str) -> dict:
    """Per-session means (in SQL) and the group comparison of the listed sessions by ``key``."""
    sessions = _store(url).list_sessions()
    sessions = sessions[sessions["id"].isin([s[0] for s in sessions_key])]
    per_session = study.per_session_means(_store(url), sessions, key)
    return {"per_session": per_session, "groups": study.compare_groups(per_session)}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _label(row: pd.Series) -> str:
    started = row["started_at"].to_pydatetime().astimezone()  # the server's local time
    status = "" if row["status"] == "ended" else f" · {row['status']}"
    who = "".join(f" · {row[k]}" for k in ("participant", "batch") if isinstance(row.get(k), str) and row[k])
    return (f"#{row['id']} · {row['name']}{who} · {started:%Y-%m-%d %H:%M} · {_duration(row['duration_s'])}"
            f"{status}")


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
    version_of_study = _study_version(url, row)
    loaded = studied = segs = None
    if version_of_study[1] or row["baseline"]:  # markers or a baseline: the rows are needed (cached)
        studied = _study_data(url, session_id, version_of_study)
        loaded = studied["study"]
        shift = loaded.start - data["start"]  # segments count from the session start, charts from the origin
        segs = loaded.segments.assign(start_s=loaded.segments["start_s"] + shift,
                                      end_s=loaded.segments["end_s"] + shift)
        study_line = stats.smooth(study.study_timeline(loaded, view["bucket_s"], face_id, origin=data["start"]),
                                  window, ["valence", *study.RELATIVE_COLUMNS])
    else:  # neither: valence comes with the emotion timeline, aggregated in the database
        study_line = stats.smooth(view["timeline"], window, ["valence"])
    st.plotly_chart(charts.emotion_timeline_figure(stats.smooth(view["timeline"], window), emotions,
                                                   title=f"Emotion over time ({who})", segments=segs),
                    key=f"timeline_{key}")
    has_baseline = loaded is not None and loaded.baseline_means is not None
    st.plotly_chart(charts.valence_timeline_figure(study_line, title=f"Valence over time ({who})", segments=segs,
                                                   vs_baseline=has_baseline), key=f"valence_{key}")
    if loaded is not None and loaded.baseline_error:
        st.warning(f"Baseline not applied: {loaded.baseline_error}")
    elif has_baseline:
        st.plotly_chart(charts.baseline_timeline_figure(
            study_line, emotions, title=f"Emotion relative to baseline, {loaded.baseline.describe()} ({who})",
            segments=segs), key=f"baseline_{key}")
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
    _segment_table(studied["segments"] if studied else pd.DataFrame(), face_id, has_baseline, key)
    _downloads(url, session_id, row["name"], key)


def _segment_table(table: pd.DataFrame, face_id: int | None, has_baseline: bool, key: str) -> None:
    """Per segment and face (study.segment_stats); markers are set on the Study tab."""
    if table.empty:
        st.caption("No markers in this session: add them on the **Study** tab to see segments.")
        return
    if face_id is not None:
        table = table[table["face_id"] == face_id]
    shown = ["label", "start_s", "duration_s", "face_id", "frames", "face_found_share", "dominant_emotion",
             "valence", *study.EMOTION_COLUMNS]
    if has_baseline:
        shown += list(study.RELATIVE_COLUMNS)
    config = {"label": "Segment", "start_s": st.column_config.NumberColumn("Start (s)", format="%.1f"),
              "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"), "face_id": "Face",
              "frames": "Frames", "face_found_share": st.column_config.NumberColumn("Face found", format="percent"),
              "dominant_emotion": "Dominant", "valence": st.column_config.NumberColumn("Valence", format="%+.2f"),
              **{c: st.column_config.NumberColumn(c[2:], format="%.2f") for c in study.EMOTION_COLUMNS},
              **{c: st.column_config.NumberColumn(c[2:].replace("_vs_baseline", " Δ") if c.startswith("p_")
                                                  else "Valence Δ", format="%+.2f") for c in study.RELATIVE_COLUMNS}}
    st.subheader("Segments", anchor=False)
    st.dataframe(table[shown], hide_index=True, key=f"segments_{key}", column_config=config)


def _downloads(url: str, session_id: int, name: str, key: str) -> None:
    store = _store(url)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "session"
    files = (("Per-frame CSV", frames_csv_bytes, "frames"), ("Summary CSV", summary_csv_bytes, "summary"),
             ("Markers CSV", markers_csv_bytes, "markers"), ("Segments CSV", segments_csv_bytes, "segments"))
    for column, (label, make, kind) in zip(st.columns(len(files)), files):
        column.download_button(label, lambda make=make: make(store, [session_id]),
                               file_name=f"facesense_{session_id}_{stem}_{kind}.csv", mime="text/csv",
                               key=f"dl_{kind}_{key}", on_click="ignore", icon=":material/download:")


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
    listed = sessions.assign(tags=sessions["tags"].map(format_tags))
    st.dataframe(listed[["id", "name", "participant", "tags", "batch", "source", "source_path", "started_at",
                         "status", "duration_s", "frame_count", "row_count"]], hide_index=True, key="sessions_table")
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
    participants = sorted(p for p in sessions["participant"].dropna().unique() if p)
    if participants:
        pick, take = st.columns([3, 1], vertical_alignment="bottom")
        who = pick.selectbox("Erase a participant", participants, index=None, key="delete_participant",
                             placeholder="Choose a participant label",
                             help="Selects every session recorded with this participant label below, to delete "
                                  "them in one action.")
        if take.button("Select their sessions", key="delete_participant_select", disabled=who is None):
            st.session_state["delete_many"] = sessions.loc[sessions["participant"] == who, "id"].tolist()
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


def study_tab(url: str, sessions: pd.DataFrame) -> None:
    """One session's study setup: participant and tags, markers (added, edited, deleted after the
    fact) and the neutral baseline. Everything is stored at once and shown on the Charts tab."""
    store = _store(url)
    row = _pick_session(sessions, "Session", "study_session")
    session_id = int(row["id"])
    info = store.get_session(session_id)
    start = info["started_at"].timestamp()

    st.subheader("Participant and tags", anchor=False)
    left, right = st.columns(2)
    participant = left.text_input("Participant", value=info["participant"] or "", key=f"participant_{session_id}",
                                  max_chars=200, placeholder="P07")
    tags_text = right.text_input("Tags", value=format_tags(info["tags"]), key=f"tags_{session_id}",
                                 placeholder="condition=A; site=Leeds", help="key=value, separated by ';'")
    if st.button("Save participant and tags", key="save_study_info"):
        try:
            store.update_session(session_id, participant=participant, tags=parse_tags(tags_text))
        except (TagError, KeyError) as exc:
            st.error(f"Not saved: {exc}")
        else:
            st.rerun()

    st.subheader("Markers", anchor=False)
    marks = store.markers(session_id)
    if marks.empty:
        st.caption("No markers yet. A marker starts a segment that lasts until the next one.")
    else:
        shown = pd.DataFrame({"marker": marks["id"], "time_s": (marks["timestamp"] - start).round(3),
                              "label": marks["label"]})
        st.dataframe(shown, hide_index=True, key="markers_table", column_config={
            "marker": "Marker", "time_s": st.column_config.NumberColumn("Time (s)", format="%.2f"), "label": "Label"})
    add_time, add_label, add_button = st.columns([1, 2, 1], vertical_alignment="bottom")
    time_s = add_time.number_input("Time (s)", min_value=0.0, value=0.0, step=1.0, key="new_marker_time",
                                   help="Seconds after the session start")
    label = add_label.text_input("Label", key="new_marker_label", max_chars=200)
    if add_button.button("Add marker", key="add_marker"):
        _apply(lambda: store.add_marker(session_id, label, start + time_s))
    if not marks.empty:
        rows = marks.set_index("id")
        chosen = st.selectbox("Edit or delete marker", marks["id"].tolist(), key=f"edit_marker_{session_id}",
                              format_func=lambda i: f"#{i} · {rows.loc[i, 'timestamp'] - start:.2f} s · "
                                                    f"{rows.loc[i, 'label']}")
        edit_time, edit_label, save, delete = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        new_time = edit_time.number_input("New time (s)", min_value=0.0, value=float(rows.loc[chosen, "timestamp"])
                                          - start, step=1.0, key=f"edit_marker_time_{chosen}")
        new_label = edit_label.text_input("New label", value=rows.loc[chosen, "label"],
                                          key=f"edit_marker_label_{chosen}", max_chars=200)
        if save.button("Save marker", key="save_marker"):
            _apply(lambda: store.update_marker(int(chosen), label=new_label, timestamp=start + new_time))
        if delete.button("Delete marker", key="delete_marker"):
            _apply(lambda: store.delete_marker(int(chosen)))

    st.subheader("Neutral baseline", anchor=False)
    _baseline_picker(url, row, start)


def _apply(action) -> None:
    """Run a store edit; a refused one says why, a done one redraws the page with it."""
    try:
        action()
    except (ValueError, KeyError) as exc:
        st.error(f"Not saved: {exc}")
    else:
        st.rerun()


def _baseline_picker(url: str, row: pd.Series, start: float) -> None:
    store = _store(url)
    session_id = int(row["id"])
    loaded: study.SessionStudy = _study_data(url, session_id, _study_version(url, row))["study"]
    current = loaded.baseline
    st.caption("Each face's emotions are also shown relative to its own mean over the baseline "
               f"(current: {current.describe() if current else 'none'}).")
    if loaded.baseline_error:
        st.warning(f"Baseline not applied: {loaded.baseline_error}")
    kinds = ["none", "first_seconds", "segment"]
    names = {"none": "No baseline", "first_seconds": "The first N seconds", "segment": "A marker segment"}
    kind = st.radio("Baseline", kinds, index=kinds.index(current.kind) if current else 0, horizontal=True,
                    format_func=names.get, key=f"baseline_kind_{session_id}")
    choice = None
    if kind == "first_seconds":
        seconds = st.number_input("N (seconds)", min_value=0.5, value=float(current.seconds) if current and
                                  current.seconds else 10.0, step=1.0, key=f"baseline_seconds_{session_id}")
        choice = study.Baseline.first_seconds(seconds)
    elif kind == "segment":
        segs = loaded.segments
        if segs.empty:
            st.info("This session has no markers: add one above, or use the first N seconds.")
            return
        options = list(range(len(segs)))
        chosen = st.selectbox("Segment", options, key=f"baseline_segment_{session_id}",
                              format_func=lambda i: f"{segs.iloc[i]['label']} ({segs.iloc[i]['start_s']:.1f}–"
                                                    f"{segs.iloc[i]['end_s']:.1f} s)")
        seg = segs.iloc[chosen]
        marker_id = None if pd.isna(seg["marker_id"]) else int(seg["marker_id"])
        choice = study.Baseline.segment(marker_id, None if marker_id is not None else str(seg["label"]))
    if st.button("Save baseline", key="save_baseline"):
        _apply(lambda: store.update_session(session_id, baseline=None if choice is None else choice.to_dict()))


GROUP_MEASURES = ("valence", "valence_vs_baseline", *study.EMOTION_COLUMNS,
                  *(f"{c}{study.VS_BASELINE}" for c in study.EMOTION_COLUMNS))


def groups_tab(url: str, sessions: pd.DataFrame) -> None:
    """Sessions grouped by a tag (or participant, batch): mean emotion and valence per group value,
    with the spread over its sessions."""
    keys = study.group_keys(sessions)
    if not keys:
        st.info("No session has a participant, batch or tag yet. Set them on the Live page before START, when "
                "analysing a video, or on the Study tab.")
        return
    left, right = st.columns(2)
    key = left.selectbox("Compare groups by", keys, key="group_key",
                         format_func=lambda k: f"tag “{k[4:]}”" if k.startswith("tag:") else k)
    measure = right.selectbox("Measure", GROUP_MEASURES, key="group_measure",
                              format_func=lambda m: m.replace("p_", "").replace("_vs_baseline", " vs baseline"))
    found = _groups(url, tuple((int(r["id"]), _version(r), repr(r["baseline"])) for _, r in sessions.iterrows()),
                    key)
    groups = found["groups"]
    st.plotly_chart(charts.group_figure(groups, measure, title=f"Mean {measure} by {key} (± std over sessions)"),
                    key="group_chart")
    st.dataframe(groups, hide_index=True, key="group_table")
    with st.expander("Per session"):
        st.dataframe(found["per_session"], hide_index=True, key="group_sessions")
    if measure.endswith(study.VS_BASELINE) and found["per_session"][measure].isna().all():
        st.caption("No session has a baseline yet: choose one per session on the Study tab.")


def _filter_sessions(sessions: pd.DataFrame) -> pd.DataFrame:
    """Narrow the session lists to batches, participants or tags, and group them (sorted together)."""
    if sessions.empty:
        return sessions
    batches = sorted(b for b in sessions["batch"].dropna().unique())
    people = sorted(p for p in sessions["participant"].dropna().unique())
    tag_items = sorted({f"{k}={v}" for tags in sessions["tags"] for k, v in (tags or {}).items()})
    if not (batches or people or tag_items):
        return sessions
    with st.expander("Filter and group sessions (batch, participant, tag)"):
        cols = st.columns(4)
        chosen_batches = cols[0].multiselect("Batch", batches, key="filter_batch")
        chosen_people = cols[1].multiselect("Participant", people, key="filter_participant")
        chosen_tags = cols[2].multiselect("Tag", tag_items, key="filter_tag", help="Sessions with all of these")
        group_by = cols[3].selectbox("Group the lists by", [NO_GROUPING, *study.group_keys(sessions)],
                                     key="group_lists_by")
    keep = pd.Series(True, index=sessions.index)
    if chosen_batches:
        keep &= sessions["batch"].isin(chosen_batches)
    if chosen_people:
        keep &= sessions["participant"].isin(chosen_people)
    for item in chosen_tags:
        name, _, value = item.partition("=")
        keep &= sessions["tags"].map(lambda tags, n=name, v=value: (tags or {}).get(n) == v)
    filtered = sessions[keep]
    if group_by != NO_GROUPING and not filtered.empty:
        order = filtered.apply(lambda r: study.group_value(r, group_by), axis=1)
        filtered = filtered.assign(_group=order).sort_values("_group", kind="stable").drop(columns="_group")
    if filtered.empty:
        st.warning("No session matches the filter.")
    return filtered


def _save_upload(uploaded, keep: bool = False) -> Path:
    """Copy the upload to a private temp file (keeping only its suffix: odd names are harmless),
    or, to keep it on purpose, to ``<FACESENSE_HOME>/videos/`` under the user's file name."""
    if keep:
        target = kept_video_path(app_paths().home, uploaded.name)
        with open(target, "xb") as handle:
            shutil.copyfileobj(uploaded, handle, length=1 << 20)
        return target
    folder = app_paths().cache_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    prune(folder, max_age_s=VIDEO_UPLOAD_MAX_AGE_S)  # copies a crash left behind
    handle = tempfile.NamedTemporaryFile(dir=folder, suffix=Path(uploaded.name).suffix.lower(), delete=False)
    with handle:
        shutil.copyfileobj(uploaded, handle, length=1 << 20)
    return Path(handle.name)


def _upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def _video_study_info(participant: str, tags_text: str, markers_file) -> dict | None:
    """Participant, tags and markers for a video's session; None (with the error shown) if one is bad."""
    try:
        tags = parse_tags(tags_text)
        markers = read_markers_csv(markers_file.getvalue(), markers_file.name) if markers_file is not None else []
    except (TagError, MarkerFileError) as exc:
        st.error(str(exc))
        return None
    return {"participant": participant.strip() or None, "tags": tags, "markers": markers}


def _start_analysis(url: str, uploaded, server_path: str, name: str, detector: DetectorSettings,
                    session_info: dict | None = None, keep_upload: bool = False) -> bool:
    """Validate the input and start the background job; False (with a message shown) if not started."""
    clicked = time.monotonic()
    slot = _server_slot()
    with slot["lock"]:
        if (other := slot["job"]) is not None and other.running:
            st.warning("Another video is being analysed on this server (one at a time: it uses every core). "
                       "Try again when it has finished." if other is not _own_job() else
                       f"{other.label} is still being analysed; wait for it or cancel it.")
            return False
        cleanup = refused = None
        if uploaded is not None and keep_upload:  # kept on purpose: the session points to the kept copy
            path, label = _save_upload(uploaded, keep=True), None
            refused = lambda: path.unlink(missing_ok=True)  # noqa: E731
        elif uploaded is not None:
            path, label = _save_upload(uploaded), uploaded.name
            cleanup = refused = lambda: path.unlink(missing_ok=True)  # noqa: E731
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
            if refused:
                refused()  # a refused upload leaves nothing on disk, kept or not
            st.error(str(exc))
            return False
        job = start_video_job(path, lambda: default_analyzer(detector_settings=detector), name=name.strip() or None,
                              source_label=label, cleanup=cleanup, store=_store(url), started=clicked,
                              **(session_info or {}))
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
    left, right = st.columns(2)
    participant = left.text_input("Participant (optional)", key="video_participant", max_chars=200,
                                  placeholder="P07")
    tags_text = right.text_input("Tags (optional)", key="video_tags", placeholder="condition=A; site=Leeds",
                                 help="key=value, separated by ';'")
    keep = st.checkbox("Keep the uploaded video on the server", value=False, key="video_keep",
                       help="Off (the default): an uploaded video is deleted when its analysis ends, and only "
                            "the numbers are stored. On: it is kept in "
                            f"{app_paths().home / KEPT_VIDEOS} under its name, and the session points to it.")
    markers_file = st.file_uploader("Markers CSV (optional)", type=["csv"], key="video_markers",
                                    help="Columns time_s,label: seconds into the video and the event's label; "
                                         "each marker starts a segment.")
    detector = _detector_settings()
    job = _own_job()
    busy = job is not None and job.running
    if st.button("Analyse video", type="primary", disabled=busy, key="analyse_video"):
        _clear_finished()
        info = _video_study_info(participant, tags_text, markers_file)
        if info is not None and _start_analysis(url, uploaded, server_path, name, detector, info, keep):
            st.rerun()  # show the running state: progress, Cancel, Analyse disabled
    st.fragment(_job_status, run_every=1.0 if busy else None)()


st.title("Statistics")
database_url = app_paths().database_url
store = _store(database_url)
store.recover()
all_sessions = store.list_sessions()
shown_sessions = _filter_sessions(all_sessions)
charts_, study_, groups_, manage_, video_ = st.tabs(["Charts", "Study", "Groups", "Manage sessions",
                                                     "Analyse a video"])
with charts_:
    if all_sessions.empty:
        st.info("No sessions yet: record one on the Live page or analyse a video file.")
    elif not shown_sessions.empty:
        charts_tab(database_url, shown_sessions)
with study_:
    if not shown_sessions.empty:
        study_tab(database_url, shown_sessions)
    else:
        st.info("No sessions to set up yet.")
with groups_:
    groups_tab(database_url, shown_sessions)
with manage_:
    if all_sessions.empty:
        st.info("No sessions to manage yet.")
    elif not shown_sessions.empty:
        manage_tab(database_url, shown_sessions)
with video_:
    video_tab(database_url)
