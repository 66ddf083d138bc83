"""Streamlit views of the Training page: data summary, live progress, evaluation, model cards.

Each function draws one part from plain data (``DataSummary``, ``Job``/``Progress``,
``evaluation.json`` dicts); the figures come from :mod:`training.reports`. The page
module decides *what* to show, these decide *how*.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import pandas as pd
import streamlit as st

from core import tasks
from core.card import ModelCard, ModelFolder
from core.registry import ModelEntry
from core.tasks import PROBABILITIES, REGRESSION
from training import reports
from training.jobs import CANCELLED, FAILED, SUCCEEDED, Job, Progress

STATE_ICONS = {SUCCEEDED: ":material/check_circle:", FAILED: ":material/error:",
               CANCELLED: ":material/cancel:"}


def duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12 s``; an em dash when unknown."""
    if seconds is None:
        return "—"
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _seconds_since(iso: str | None) -> float | None:
    if not iso:
        return None
    return (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()


def data_summary(summary) -> None:
    """Counts per split and class (or the age histogram) and a grid of labelled sample faces."""
    cols = st.columns(len(summary.splits) + 1)
    for col, (split, count) in zip(cols, summary.splits.items()):
        col.metric(f"{split} images", f"{count:,}")
    cols[-1].metric("skipped (unreadable/unlabelled)", f"{summary.skipped:,}")
    if summary.split_source:
        st.caption(f"Split: {summary.split_source}")
    if summary.split_caveat:
        st.warning(summary.split_caveat)
    left, right = st.columns(2)
    if summary.class_counts:
        title = tasks.get(summary.task).data.count_title
        left.plotly_chart(reports.class_counts_figure(summary.class_counts, title), key="data_counts")
    if summary.ages is not None and len(summary.ages):
        right.plotly_chart(reports.age_histogram(summary.ages), key="data_ages")
    if summary.samples:
        st.caption("Random sample faces as the network will see them, with their labels")
        per_row = 8
        for start in range(0, len(summary.samples), per_row):
            row = summary.samples[start:start + per_row]
            for col, (image, label) in zip(st.columns(per_row), row):
                col.image(image if image.shape[-1] != 1 else image[..., 0], caption=label,
                          channels="BGR" if image.ndim == 3 and image.shape[-1] == 3 else "RGB",
                          width="stretch")


def progress_panel(job: Job, progress: Progress) -> None:
    """Progress bars (epoch and batch), elapsed/remaining time and live learning curves."""
    opts = job.options
    st.markdown(f"**{opts.task}** · `{opts.arch or 'default architecture'}` · {opts.epochs or 'recipe'} epochs · "
                f"batch {opts.batch_size or 'recipe'} · data {opts.fraction:.0%} · job `{job.id}`")
    if progress.phase == "preparing":
        st.progress(0.0, text="Loading and checking the data (first use of a data set decodes every image)…")
    elif progress.phase == "training":
        epoch_now = min(progress.epochs_done + 1, progress.epochs)
        st.progress(progress.fraction, text=f"Epoch {epoch_now} of {progress.epochs} "
                                            f"(whole run {progress.fraction:.0%})")
        batch_share = progress.step / progress.steps if progress.steps else 0.0
        st.progress(min(1.0, batch_share), text=f"Batch {progress.step} of {progress.steps}")
    else:
        st.progress(1.0, text="Evaluating on the held-out split and comparing with the active model…")
    cols = st.columns(3)
    cols[0].metric("Elapsed", duration(_seconds_since(job.started or job.created)))
    remaining = progress.remaining_seconds()
    if remaining is not None and progress.last_time is not None:
        remaining = max(0.0, remaining - (time.time() - progress.last_time))
    cols[1].metric("Training time left (est.)", duration(remaining))
    cols[2].metric("State", job.state)
    if progress.batch_logs:
        st.caption("Current epoch so far: " + ", ".join(
            f"{k} {v:.4g}" for k, v in progress.batch_logs.items() if isinstance(v, (int, float))))
    if progress.history:
        st.plotly_chart(reports.learning_curves(progress.history, progress.epochs), key=f"live_curves_{job.id}")
    else:
        st.caption("Learning curves appear after the first epoch.")


def job_header(job: Job) -> None:
    icon = STATE_ICONS.get(job.state, ":material/hourglass_top:")
    st.markdown(f"{icon} **{job.state}** · job `{job.id}` · started {job.created}")
    if job.state == FAILED:
        st.error(job.message or "The training failed.")
        with st.expander("Log (last lines)"):
            st.code(job.log_tail() or "(empty)", language=None)
    elif job.state == CANCELLED:
        st.info("This run was cancelled: nothing was registered and the active model is unchanged.")
    for note in job.notes:
        st.caption(note)


def data_label(card: ModelCard | Mapping, full: bool = False) -> str:
    """Where a model's training data came from: the path given on the page, else the card's source."""
    card = ModelCard.from_dict(card)
    data = card.extra.get("data")
    if data:
        return str(data) if full else Path(str(data)).name
    dataset = card.dataset or {}
    if not isinstance(dataset, dict):
        return str(dataset)
    fraction = dataset.get("fraction", 1.0)
    share = f" ({fraction:.0%} of it)" if isinstance(fraction, (int, float)) and fraction < 1 else ""
    return f"{dataset.get('source', '')}{share}"


def card_summary(card: ModelCard | Mapping) -> None:
    """The facts of a model card that matter for choosing it."""
    card = ModelCard.from_dict(card)
    metrics = card.metrics or {}
    rows = {
        "task": card.task,
        "architecture": card.architecture,
        "data": data_label(card, full=True),
        "trained": card.created or "",
        "epochs": card.epochs,
        "parameters": card.params,
        "options": json.dumps(card.options if card.options is not None else {}, sort_keys=True),
        "held-out images": metrics.get("n"),
        **{f"metric: {k}": f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)},
    }
    st.dataframe(pd.DataFrame({"value": {k: str(v) for k, v in rows.items() if v not in (None, "")}}),
                 width="stretch")


def _formatted(table: pd.DataFrame):
    """Three decimals for rates and errors, whole numbers for counts (``support``, ``n``)."""
    def is_count(column) -> bool:
        return (column[-1] if isinstance(column, tuple) else column) in ("support", "n")

    return table.style.format({c: "{:.0f}" if is_count(c) else "{:.3f}" for c in table.columns}, na_rep="—")


def evaluation_views(task: str, evaluations: dict[str, dict], key: str) -> None:
    """Everything needed to judge a model, each model side by side on the same split."""
    if not evaluations:
        st.info("No evaluation available.")
        return
    first = next(iter(evaluations.values()))
    st.caption(f"Held-out split: **{first.get('split', '?')}**, {first.get('n', '?')} images")
    st.dataframe(reports.metrics_table(evaluations), width="stretch")
    output, metric = tasks.get(task).output, reports.primary_metric(task)
    if output == PROBABILITIES:
        cols = st.columns(len(evaluations))
        for col, (label, ev) in zip(cols, evaluations.items()):
            if ev.get("confusion"):
                col.plotly_chart(reports.confusion_figure(ev, f"Confusion: {label}"),
                                 key=f"{key}_confusion_{label}")
        st.caption("Confusion matrices show each true class's images by predicted class, as row percentages.")
        st.plotly_chart(reports.per_class_figure(evaluations, "f1"), key=f"{key}_f1")
        st.dataframe(_formatted(reports.per_class_table(evaluations)), width="stretch")
    elif output == REGRESSION:
        st.plotly_chart(reports.predicted_vs_true(evaluations), key=f"{key}_pvt")
        if reports.group_table(evaluations, "age_band").size:
            st.plotly_chart(reports.group_figure(evaluations, "age_band", metric), key=f"{key}_band")
    # a regression's age bands were drawn above, as its own chart
    for group in ("gender", "race") + (("age_band",) if output != REGRESSION else ()) + ("face_box",):
        table = reports.group_table(evaluations, group)
        if table.size:
            st.markdown(f"**By {reports.GROUP_TITLES[group]}**")
            st.plotly_chart(reports.group_figure(evaluations, group, metric), key=f"{key}_{group}")
            st.dataframe(_formatted(table), width="stretch")


def saved_evaluation(entry: ModelEntry) -> dict | None:
    """The evaluation a training run stored beside a registered model (None for others)."""
    if entry.is_default:
        return None
    return ModelFolder(entry.model_path.parent).read_evaluation()


def registry_table(entries: list[ModelEntry], active_id: str) -> pd.DataFrame:
    rows = []
    for entry in entries:
        metrics = entry.card.metrics or {}
        metric = reports.primary_metric(entry.task)
        rows.append({
            "active": "●" if entry.id == active_id else "",
            "model": entry.id,
            "architecture": entry.card.architecture if entry.card.architecture is not None else "",
            "data": data_label(entry.card),
            "trained": entry.created[:19] if entry.created else ("shipped" if entry.is_default else ""),
            metric: metrics.get(metric),
        })
    return pd.DataFrame(rows)


def activation_popover(task: str, model_id: str, check: dict, key: str) -> bool:
    """The "Activate this model…" confirmation: the comparison on the same split, a warning when the
    new model is worse, and why validation and test differ. True when the user confirmed."""
    label = f"Activate this model for {task}…" + (" (worse than the active one)" if check["worse"] else "")
    with st.popover(label, icon=":material/warning:" if check["worse"] else None):
        st.markdown(check["comparison"])
        if check["warning"]:
            st.warning(check["warning"])
        if check["gap"]:
            st.caption(check["gap"])
        return st.button(f"Yes, activate {model_id}", type="secondary" if check["worse"] else "primary", key=key)
