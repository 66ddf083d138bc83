"""Plotly figures and tables that let a user judge a data set, a training and a model.

Plain functions of plain data (progress history, ``evaluation.json`` dicts,
:class:`training.data.DataSummary` fields), no Streamlit, so the Training page
stays a thin view and the builders can be tested on their own. Comparisons take
``{label: evaluation}`` (e.g. ``{"new": ..., "active": ...}``) so any number of
models can share one chart.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import tasks

Evaluations = Mapping[str, dict]

# Keras log keys that are not model-quality metrics.
_NON_METRIC_LOGS = {"loss", "val_loss", "learning_rate", "lr", "epoch"}
GROUP_TITLES = {"gender": "gender", "race": "race", "age_band": "age band", "face_box": "face box"}
METRIC_TITLES = {"mae": "MAE (years)", "accuracy": "accuracy"}


def primary_metric(task: str) -> str:
    """The one number a card headlines: MAE in years for age, accuracy otherwise."""
    return tasks.get(task).metric


# errors and losses; the tasks' headline figures say their own direction (Task.lower_is_better)
_LOWER_IS_BETTER = {"rmse", "loss", "mse",
                    *(tasks.get(t).metric for t in tasks.TASKS if tasks.get(t).lower_is_better)}


def higher_is_better(metric: str) -> bool:
    """For any figure in an evaluation or a Keras log."""
    return metric not in _LOWER_IS_BETTER


def curve_metrics(history: Sequence[dict]) -> list[str]:
    """Training metric names in a Keras history (``accuracy``, ``mae``...), without ``val_``."""
    names: list[str] = []
    for logs in history:
        for key in logs:
            base = key[4:] if key.startswith("val_") else key
            if base not in _NON_METRIC_LOGS and base not in names:
                names.append(base)
    return names


def learning_curves(history: Sequence[dict], epochs: int | None = None) -> go.Figure:
    """Loss and each metric per epoch, train and validation, side by side.

    ``epochs`` fixes the x axis to the whole run, so live curves grow into it.
    """
    metrics = ["loss", *curve_metrics(history)]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    xs = [logs.get("epoch", i + 1) for i, logs in enumerate(history)]
    total = max([epochs or 0, *xs])
    colours = {"train": "#1f77b4", "validation": "#ff7f0e"}
    for col, metric in enumerate(metrics, start=1):
        for label, key in (("train", metric), ("validation", f"val_{metric}")):
            values = [logs.get(key) for logs in history]
            if all(v is None for v in values):
                continue
            fig.add_trace(go.Scatter(x=xs, y=values, mode="lines+markers", name=label,
                                     line={"color": colours[label]}, legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col, dtick=1 if total <= 20 else None,
                         range=[0.7, total + 0.3] if total else None)
    fig.update_layout(height=320, margin={"t": 40, "b": 40, "l": 40, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def class_counts_figure(counts: Mapping[str, int], title: str = "Images per class") -> go.Figure:
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()),
                           textposition="outside"))
    fig.update_layout(title=title, height=300, margin={"t": 40, "b": 40, "l": 40, "r": 10},
                      yaxis_title="images")
    return fig


def age_histogram(ages: np.ndarray, title: str = "Age distribution") -> go.Figure:
    fig = go.Figure(go.Histogram(x=np.asarray(ages), xbins={"start": 0, "size": 5}))
    fig.update_layout(title=title, height=300, margin={"t": 40, "b": 40, "l": 40, "r": 10},
                      xaxis_title="age (years)", yaxis_title="images")
    return fig


def confusion_figure(evaluation: dict, title: str = "") -> go.Figure:
    """Row-normalised confusion matrix (recall per true class), counts in the hover."""
    counts = np.asarray(evaluation["confusion"], dtype=float)
    names = list(evaluation["class_names"])
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, zmin=0, zmax=1, colorscale="Blues",
        text=np.round(share * 100).astype(int), texttemplate="%{text}%",
        customdata=counts.astype(int),
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} images (%{z:.0%} of row)<extra></extra>"))
    fig.update_layout(title=title or "Confusion matrix (row %)", height=420,
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def metrics_table(evaluations: Evaluations) -> pd.DataFrame:
    """Headline metrics, one column per model, plus the number of images evaluated."""
    table = {}
    for label, evaluation in evaluations.items():
        column = {name: value for name, value in (evaluation.get("metrics") or {}).items()
                  if isinstance(value, (int, float)) and name != "n"}
        column["images"] = evaluation.get("n")
        table[label] = column
    return pd.DataFrame(table)


def _per_class(evaluation: dict) -> dict[str, dict]:
    """Per-class results in the model's class order (the JSON file stores keys sorted)."""
    per_class = evaluation.get("per_class") or {}
    order = [name for name in evaluation.get("class_names") or [] if name in per_class]
    return {name: per_class[name] for name in order + sorted(set(per_class) - set(order))}


def per_class_table(evaluations: Evaluations) -> pd.DataFrame:
    """Precision/recall/F1/support per class; columns ``(model, measure)``."""
    parts = {}
    for label, ev in evaluations.items():
        if ev.get("per_class"):
            table = pd.DataFrame(_per_class(ev)).T[["precision", "recall", "f1", "support"]]
            parts[label] = table.astype({"precision": float, "recall": float, "f1": float, "support": int})
    return pd.concat(parts, axis=1) if parts else pd.DataFrame()


def per_class_figure(evaluations: Evaluations, measure: str = "f1") -> go.Figure:
    fig = go.Figure()
    for label, ev in evaluations.items():
        per_class = _per_class(ev)
        fig.add_trace(go.Bar(name=label, x=list(per_class), y=[v[measure] for v in per_class.values()]))
    fig.update_layout(barmode="group", title=f"{measure.upper() if measure == 'f1' else measure} per class",
                      height=320, yaxis_range=[0, 1], margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def predicted_vs_true(evaluations: Evaluations, max_points: int = 3000) -> go.Figure:
    """Age predictions against the true age with the ideal diagonal."""
    fig = go.Figure()
    top = 0.0
    rng = np.random.default_rng(0)
    for label, ev in evaluations.items():
        y_true, y_pred = np.asarray(ev.get("y_true", []), float), np.asarray(ev.get("y_pred", []), float)
        if len(y_true) > max_points:
            keep = rng.choice(len(y_true), max_points, replace=False)
            y_true, y_pred = y_true[keep], y_pred[keep]
        if len(y_true):
            top = max(top, float(y_true.max()), float(y_pred.max()))
        fig.add_trace(go.Scatter(x=y_true, y=y_pred, mode="markers", name=label, opacity=0.45,
                                 marker={"size": 5}))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfect",
                             line={"dash": "dash", "color": "grey"}))
    fig.update_layout(title="Predicted vs true age", xaxis_title="true age (years)",
                      yaxis_title="predicted age (years)", height=420,
                      margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def group_table(evaluations: Evaluations, group: str) -> pd.DataFrame:
    """Metrics per value of ``group`` (gender, race, age_band); columns ``(model, metric)``."""
    parts = {}
    for label, ev in evaluations.items():
        groups = (ev.get("by_group") or {}).get(group)
        if groups:
            parts[label] = pd.DataFrame(groups).T
    return pd.concat(parts, axis=1) if parts else pd.DataFrame()


def group_figure(evaluations: Evaluations, group: str, metric: str) -> go.Figure:
    """``metric`` per group value, one bar per model (e.g. MAE by age band)."""
    fig = go.Figure()
    for label, ev in evaluations.items():
        groups = (ev.get("by_group") or {}).get(group) or {}
        names = [name for name, values in groups.items() if metric in values]
        fig.add_trace(go.Bar(name=label, x=names, y=[groups[n][metric] for n in names],
                             customdata=[groups[n].get("n") for n in names],
                             hovertemplate="%{x}: %{y:.3f} (%{customdata} images)<extra>" + label + "</extra>"))
    fig.update_layout(barmode="group", height=320,
                      title=f"{METRIC_TITLES.get(metric, metric)} by {GROUP_TITLES.get(group, group)}",
                      margin={"t": 40, "b": 40, "l": 40, "r": 10})
    return fig


def activation_check(task: str, card: dict, new: dict | None, active: dict | None,
                     history: Sequence[dict] = (), active_id: str = "the active model") -> dict:
    """What to tell a user before they activate a new model: the two models on the same split,
    whether the new one is worse there, and why its validation and test figures differ.

    Returns ``{"comparison": str, "worse": bool, "warning": str | None, "gap": str | None}``.
    """
    info = tasks.get(task)
    metric = info.metric
    title = METRIC_TITLES.get(metric, metric)
    better_high = not info.lower_is_better
    new_value = ((new or {}).get("metrics") or {}).get(metric)
    old_value = ((active or {}).get("metrics") or {}).get(metric)
    split, n = (new or {}).get("split", "held-out"), (new or {}).get("n", "?")
    out: dict = {"comparison": "", "worse": False, "warning": None, "gap": None}
    if new_value is None:
        out["comparison"] = "No evaluation of this model is available."
        return out
    if old_value is None:
        out["comparison"] = (f"This model: {title} {new_value:.3f} on the {n} {split} images "
                             f"(no figure for {active_id}).")
    else:
        out["comparison"] = (f"On the same {n} {split} images: this model {title} {new_value:.3f}, "
                             f"{active_id} {old_value:.3f}.")
        out["worse"] = info.better(old_value, new_value)
        if out["worse"]:
            out["warning"] = (f"This model is worse than {active_id} on the same test images ({title} "
                              f"{new_value:.3f} against {old_value:.3f}). Activating it makes the Live page "
                              "and video analysis less accurate; keep the active model unless you have a reason.")
    vals = [logs[f"val_{metric}"] for logs in history if isinstance(logs.get(f"val_{metric}"), (int, float))]
    if vals:
        val = info.best(vals)
        relative = abs(val - new_value) / max(abs(new_value), 1e-9)
        if (abs(val - new_value) > 0.05 if better_high else relative > 0.15):
            dataset = card.get("dataset") or {}
            fraction = dataset.get("fraction", 1.0)
            epochs = card.get("epochs", len(history))
            share = (f"only {fraction:.0%} of the validation split (a small sample, where a few images move "
                     "the figure by several points)" if isinstance(fraction, (int, float)) and fraction < 1
                     else "the validation split")
            out["gap"] = (f"Why validation ({val:.3f}) and test ({new_value:.3f}) differ: the validation {title} "
                          f"was measured on {share}, after {epochs} epoch(s), and the kept epoch was chosen by that "
                          f"same figure, so it is noisy and flattering. The test figure covers all {n} {split} "
                          "images the active model was scored on: compare models by it.")
    return out
