"""Training page: bring a data set, train in the background, watch it learn, judge, activate.

A thin view over :mod:`training.jobs` (background jobs on disk, so a run survives
reruns, navigation and browser reloads), :func:`training.data.inspect` (validation
before anything starts) and :class:`core.registry.ModelRegistry` (cards, activation).
"""
import core  # noqa: F401  (first: safe native-library import order)

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import streamlit as st

from core import tasks
from core.access import allowed_media_path
from core.config import TASKS
from core.registry import ModelRegistry
from pages.components import training_views as views
from training.archives import DataError
from training import reports
from training.builders import ARCHITECTURES, PRECISIONS, cpu_has_bfloat16, recipe
from training.data import inspect
from training.jobs import SUCCEEDED, JobBusy, JobError, JobManager
from training.options import TrainOptions
from pages.components.login import require_login

require_login()  # a fresh server's first request may run this page without app.py

POLL_SECONDS = 2.0
PACK_HINT = " Or a .npz pack written by `python -m training pack`."


CHECKED_KEEP = 8  # data checks remembered per server (newest first)


@st.cache_resource(show_spinner=False)
def _checked() -> OrderedDict:
    """(task, path, size, mtime) -> (summary, error): each file version is checked once, not per rerun."""
    return OrderedDict()


def _summary_or_error(task: str, path: str):
    stat = Path(path).stat()
    key, checked = (task, path, stat.st_size, stat.st_mtime_ns), _checked()
    if key in checked:
        checked.move_to_end(key)
        return checked[key]
    what = "decoding every image and finding each face" if tasks.get(task).data.detects_faces \
        else "decoding every image"
    shown = st.empty()
    shown.progress(0.0, text=f"Reading and checking the data ({what}; later looks come from the cache)…")

    def report(done: int, total: int | None) -> None:
        if total:
            shown.progress(min(1.0, done / total), text=f"Reading and checking the data: {done:,} of {total:,} "
                                                         f"files ({what})…")
        else:
            shown.progress(0.0, text=f"Reading and checking the data: {done:,} files so far ({what})…")

    try:
        result = inspect(task, path, progress=report), None
    except DataError as exc:
        result = None, str(exc)
    finally:
        shown.empty()
    checked[key] = result
    while len(checked) > CHECKED_KEEP:
        checked.popitem(last=False)
    return result


def _saved_upload(manager: JobManager, task: str, uploaded) -> str | None:
    """Save an upload once per file (the rerun after each click must not copy it again).

    An upload this tab no longer holds (removed from the uploader or replaced) is deleted
    from the server unless a job reads it; a refused one is deleted at once (see data_section).
    """
    saved = st.session_state.setdefault("uploads", {})
    key = (uploaded.file_id, task)
    _discard_other_uploads(manager, keep=key)
    if key not in saved:
        try:
            saved[key] = {"path": str(manager.save_upload(uploaded.name, uploaded, task))}
        except JobError as exc:
            saved[key] = {"error": str(exc)}
        except OSError as exc:
            st.error(f"Could not store the upload on the server: {exc}")
            return None
    if "error" in saved[key]:
        st.error(saved[key]["error"])
        return None
    return saved[key]["path"]


def _discard_other_uploads(manager: JobManager, keep=None) -> None:
    saved = st.session_state.get("uploads", {})
    for key in [k for k in saved if k != keep and "path" in saved[k]]:
        manager.discard_upload(saved.pop(key)["path"])


def _refuse_upload(manager: JobManager, task: str, uploaded, path: str, error: str) -> None:
    """Bad data uploaded: delete the file, remember the message for the reruns."""
    manager.discard_upload(path)
    st.session_state["uploads"][(uploaded.file_id, task)] = {"error": f"This data cannot be used: {error}"}


def data_section(manager: JobManager):
    """Step 1: choose and validate the data; returns (task, path, summary) or Nones."""
    task = st.selectbox("Task", TASKS, key="task", format_func=lambda t: tasks.get(t).title)
    info = tasks.get(task)
    st.caption(info.data.hint + PACK_HINT)
    source = st.radio("Data source", ["Server path", "Upload"], horizontal=True, key="source")
    path = uploaded = None
    if source == "Server path":
        typed = st.text_input("Path on this server (file or folder)", key="data_path",
                              placeholder="/data/fer2013.csv or /data/UTKFace.tar")
        if typed.strip():
            try:  # only inside the configured media folders (FACESENSE_MEDIA_DIRS), after resolving links and ..
                candidate = allowed_media_path(typed, str(st.get_option("server.address") or ""))
            except ValueError as exc:
                st.error(str(exc))
            else:
                if candidate.exists():
                    path = str(candidate)
                else:
                    st.error(f"Not found on the server: {typed.strip()}")
    else:
        uploaded = st.file_uploader(f"Upload ({', '.join(info.upload_suffixes)})", key=f"upload_{task}")
        if uploaded is not None:
            path = _saved_upload(manager, task, uploaded)
        else:
            _discard_other_uploads(manager)  # the user removed the file: it goes from the server too
    if path is None:
        return task, None, None
    summary, error = _summary_or_error(task, path)
    if error:
        st.error(f"This data cannot be used: {error}")
        if uploaded is not None:
            _refuse_upload(manager, task, uploaded, path, error)
        return task, None, None
    views.data_summary(summary)
    return task, path, summary


def options_section(task: str) -> TrainOptions:
    """Step 2: training options; each (task, architecture) starts from the library's recipe."""
    arch = st.selectbox("Architecture", list(ARCHITECTURES), key="arch",
                        format_func=lambda n: f"{n}: {ARCHITECTURES[n]}")
    base = recipe(task, arch)
    key = f"{task}_{arch}"   # new defaults when the task or architecture changes
    batch_sizes = sorted({16, 32, 64, 128, 256, base.batch_size})
    cols = st.columns(4)
    epochs = cols[0].number_input("Epochs", 1, 500, base.epochs, key=f"epochs_{key}")
    batch = cols[1].selectbox("Batch size", batch_sizes, index=batch_sizes.index(base.batch_size),
                              key=f"batch_{key}")
    lr = cols[2].number_input("Learning rate", 1e-6, 1.0, base.learning_rate, step=1e-4, format="%.6f",
                              key=f"lr_{key}", help="peak rate of the schedule")
    seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    cols = st.columns(3)
    augment = cols[0].toggle("Augmentation (flips, shifts, brightness)", value=True, key="augment")
    fast = cpu_has_bfloat16()
    mixed = cols[1].toggle("Mixed precision (bfloat16)", value=False, key="mixed_precision",
                           help=PRECISIONS["mixed_bfloat16"] + (". This CPU has it." if fast else
                                                                 ". This CPU lacks it: no gain here."))
    fraction = cols[2].slider("Share of the data to use (quick runs)", 0.01, 1.0, 1.0, 0.01, key="fraction")
    return TrainOptions(task=task, data="", arch=arch, epochs=int(epochs), batch_size=int(batch),
                        learning_rate=float(lr), augment=augment, fraction=float(fraction), seed=int(seed),
                        precision="mixed_bfloat16" if mixed else "float32")


def train_tab(manager: JobManager, running) -> None:
    latest = next(iter(manager.list()), None)
    if running is None and latest is not None:
        st.caption(f"Latest run `{latest.id}`: {latest.state}; see **Results**.")
    st.subheader("1 · Data")
    task, path, summary = data_section(manager)
    st.subheader("2 · Options")
    options = options_section(task)
    if running is not None:
        st.info("A training is running on this server; only one runs at a time.")
    elif summary is None:
        st.caption("Choose valid data above to enable training.")
    if st.button("Start training", type="primary", disabled=summary is None or running is not None,
                 key="start"):
        try:
            manager.start(replace(options, data=path))
        except JobBusy as exc:
            st.warning(str(exc))
        except JobError as exc:
            st.error(str(exc))
        else:
            st.rerun()


def results_tab(manager: JobManager, registry: ModelRegistry) -> None:
    jobs = [job for job in manager.list() if job.done]
    if not jobs:
        st.info("Finished runs appear here with their evaluation.")
        return
    states = {job.id: job.state for job in jobs}
    job_id = st.selectbox("Run", list(states), key="result_job", format_func=lambda i: f"{i} · {states[i]}")
    job = manager.status(job_id)
    views.job_header(job)
    if job.state != SUCCEEDED:
        return
    task = job.options.task
    try:
        card = registry.get(job.model_id).card
    except KeyError:
        st.info(f"Its model {job.model_id} has since been deleted from the registry.")
        return
    evaluations = {"new": job.evaluation()}
    compared = job.active_evaluation()
    if registry.active(task).id == job.model_id:
        st.success(f"This model is the active {task} model.")
    else:
        check = reports.activation_check(task, card, evaluations["new"], compared,
                                         manager.progress(job.id).history,
                                         f"the active model ({job.active_model_id})")
        if views.activation_popover(task, job.model_id, check, key=f"activate_{job.id}"):
            registry.activate(task, job.model_id)
            st.toast(f"Activated {job.model_id}: the Live page and video analysis use it from now on.")
            st.rerun()
    if compared is not None:
        evaluations[f"active ({job.active_model_id})"] = compared
    st.markdown("**Evaluation on the held-out split, side by side with the model that was active**")
    views.evaluation_views(task, evaluations, key=f"eval_{job.id}")
    history = manager.progress(job.id).history
    if history:
        st.markdown("**Learning curves**")
        st.plotly_chart(reports.learning_curves(history), key=f"curves_{job.id}")
    with st.expander("Model card"):
        views.card_summary(card)
        st.json(card.to_dict(), expanded=False)


def registry_tab(registry: ModelRegistry) -> None:
    task = st.selectbox("Task", TASKS, key="registry_task")
    active = registry.active(task)
    entries = registry.list(task)
    st.dataframe(views.registry_table(entries, active.id), hide_index=True, width="stretch")
    ids = [e.id for e in entries]
    model_id = st.selectbox("Model", ids, index=ids.index(active.id) if active.id in ids else 0,
                            key=f"registry_model_{task}")
    entry = registry.get(model_id)
    cols = st.columns(3)
    if cols[0].button("Activate", disabled=entry.id == active.id, key="registry_activate"):
        registry.activate(task, entry.id)
        st.rerun()
    if cols[1].button("Restore the shipped default", disabled=active.is_default, key="registry_default"):
        registry.restore_default(task)
        st.rerun()
    deletable = not (entry.is_default or entry.id == active.id)
    with cols[2].popover("Delete…", disabled=not deletable):
        st.write(f"Delete {entry.id} and its files for good?")
        if st.button("Delete", type="primary", key="registry_delete"):
            registry.delete(entry.id)
            st.rerun()
    views.card_summary(entry.card)
    evaluation = views.saved_evaluation(entry)
    if evaluation:
        with st.expander("Evaluation on its held-out split"):
            views.evaluation_views(task, {entry.id: evaluation}, key=f"registry_eval_{entry.id}")


manager = JobManager()
registry = ModelRegistry()
st.title("Training")
st.caption("Train your own emotion, age or gender model, watch it learn, compare it with the active "
           "model on the same held-out images, and switch the live app to it. Nothing leaves this machine.")


@st.fragment(run_every=POLL_SECONDS)
def running_panel(job_id: str) -> None:
    """Only this part reruns every few seconds while a training runs."""
    job = manager.status(job_id)
    if job.done:
        st.rerun()  # the whole page: progress becomes results
    views.progress_panel(job, manager.progress(job_id))
    with st.popover("Cancel training…"):
        st.write("Stop this run? Its progress is lost and nothing is registered.")
        if st.button("Yes, cancel the training", type="primary", key="cancel"):
            with st.spinner("Stopping the training processes…"):
                manager.cancel(job_id)
            st.rerun()


running = manager.current()
if running is not None:
    st.session_state["watched_job"] = running.id
    st.subheader("Training in progress")
    running_panel(running.id)
elif watched := st.session_state.pop("watched_job", None):
    # the run this browser session was watching has ended: open its results
    st.session_state["training_tab"] = "Results"
    st.session_state["result_job"] = watched
    st.toast(f"Training {watched} ended: {manager.status(watched).state}.")
# Results and registry run only when open (they read files and draw many charts); the form
# always runs so its inputs survive a look at another tab.
train, results, models = st.tabs(["New training", "Results", "Model registry"], key="training_tab",
                                 on_change="rerun")
with train:
    train_tab(manager, running)
if results.open:
    with results:
        results_tab(manager, registry)
if models.open:
    with models:
        registry_tab(registry)
