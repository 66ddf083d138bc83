"""Plotly figures of one session's aggregates (built from :mod:`core.session_stats` frames).

Plain Plotly, no Streamlit, so the figures can be checked in tests or saved as
HTML. Every emotion keeps one colour across all charts and sessions, so two
sessions side by side read the same way.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.config import EMOTIONS

EMOTION_COLORS = {
    "angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c",
    "sad": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#7f7f7f",
}
GENDER_COLORS = {"female": "#e377c2", "male": "#17becf"}
VALENCE_COLOR = "#111111"
BAND_COLORS = ("#eef3fb", "#fbf3e6")  # alternating segment bands, light enough to read the lines over
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, template="plotly_white")


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout=dict(title=title, **LAYOUT))
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def time_axis(seconds: pd.Series, span_s: float) -> tuple[pd.Series, str]:
    """Seconds, or minutes for sessions longer than ten minutes, with the axis title."""
    return (seconds / 60.0, "time since start (min)") if span_s > 600 else (seconds, "time since start (s)")


def add_segments(fig: go.Figure, segments: pd.DataFrame | None, span_s: float) -> go.Figure:
    """Markers on a time chart: a vertical line at each marker and a labelled band per segment.

    ``segments``: :func:`core.study.segments` (times in s on the chart's own origin); ``span_s``
    as given to :func:`time_axis`, so bands and lines use the chart's unit.
    """
    if segments is None or segments.empty:
        return fig
    scale = 60.0 if span_s > 600 else 1.0
    for i, seg in enumerate(segments.itertuples(index=False)):
        x0, x1 = seg.start_s / scale, seg.end_s / scale
        if x1 > x0:
            fig.add_vrect(x0=x0, x1=x1, fillcolor=BAND_COLORS[i % len(BAND_COLORS)], opacity=0.35, layer="below",
                          line_width=0, annotation=dict(text=str(seg.label), textangle=0, font=dict(size=11)),
                          annotation_position="top left")
        if not pd.isna(seg.marker_id):
            fig.add_vline(x=x0, line=dict(color="#444", width=1, dash="dot"))
    fig.update_layout(margin=dict(LAYOUT["margin"], t=60))
    return fig


def _time_figure(title: str, timeline: pd.DataFrame, segments: pd.DataFrame | None):
    span = float(timeline["t_s"].max())
    if segments is not None and not segments.empty:
        span = max(span, float(segments["end_s"].max()))
    x, x_title = time_axis(timeline["t_s"], span)
    fig = go.Figure(layout=dict(title=title, **LAYOUT))
    add_segments(fig, segments, span)
    fig.update_layout(hovermode="x unified", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title=x_title)
    return fig, x


def emotion_timeline_figure(timeline: pd.DataFrame, emotions: list[str] | None = None,
                            title: str = "Emotion over time", segments: pd.DataFrame | None = None) -> go.Figure:
    """One line per emotion: mean probability per time bucket (already smoothed by the caller),
    with the session's markers and segments when given."""
    if timeline.empty:
        return _empty(title, "no emotion results")
    fig, x = _time_figure(title, timeline, segments)
    for emotion in emotions or EMOTIONS:
        fig.add_trace(go.Scatter(x=x, y=timeline[emotion], name=emotion, mode="lines",
                                 line=dict(color=EMOTION_COLORS[emotion], width=2),
                                 hovertemplate=f"{emotion} %{{y:.0%}}<extra></extra>"))
    fig.update_yaxes(title="probability", range=[0, 1], tickformat=".0%")
    return fig


def valence_timeline_figure(timeline: pd.DataFrame, title: str = "Valence over time",
                            segments: pd.DataFrame | None = None, vs_baseline: bool = False) -> go.Figure:
    """Mean valence per time bucket (``core.study.study_timeline``), -1..1; with the valence relative
    to the faces' baseline as a second line when ``vs_baseline``."""
    if timeline.empty or timeline["valence"].isna().all():
        return _empty(title, "no emotion results")
    fig, x = _time_figure(title, timeline, segments)
    fig.add_trace(go.Scatter(x=x, y=timeline["valence"], name="valence", mode="lines",
                             line=dict(color=VALENCE_COLOR, width=2),
                             hovertemplate="valence %{y:+.2f}<extra></extra>"))
    if vs_baseline and "valence_vs_baseline" in timeline:
        fig.add_trace(go.Scatter(x=x, y=timeline["valence_vs_baseline"], name="valence vs baseline",
                                 mode="lines", line=dict(color=VALENCE_COLOR, width=2, dash="dash"),
                                 hovertemplate="vs baseline %{y:+.2f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    fig.update_yaxes(title="valence", range=[-1, 1])
    return fig


def baseline_timeline_figure(timeline: pd.DataFrame, emotions: list[str] | None = None,
                             title: str = "Emotion relative to baseline",
                             segments: pd.DataFrame | None = None) -> go.Figure:
    """One line per emotion: mean probability minus each face's own baseline mean (``*_vs_baseline``)."""
    columns = [f"p_{e}_vs_baseline" for e in emotions or EMOTIONS]
    if timeline.empty or timeline[columns].isna().all().all():
        return _empty(title, "no face of this view was seen during the baseline")
    fig, x = _time_figure(title, timeline, segments)
    for emotion, column in zip(emotions or EMOTIONS, columns):
        fig.add_trace(go.Scatter(x=x, y=timeline[column], name=emotion, mode="lines",
                                 line=dict(color=EMOTION_COLORS[emotion], width=2),
                                 hovertemplate=f"{emotion} %{{y:+.0%}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    fig.update_yaxes(title="difference from baseline", range=[-1, 1], tickformat="+.0%")
    return fig


def group_figure(groups: pd.DataFrame, measure: str, title: str) -> go.Figure:
    """Bar per group value: the mean of ``measure`` over its sessions, error bars one std over sessions."""
    column = f"mean_{measure}"
    if groups.empty or groups[column].isna().all():
        return _empty(title, "no sessions with emotion results")
    color = VALENCE_COLOR if measure.startswith("valence") else EMOTION_COLORS.get(measure[2:].split("_")[0])
    fig = go.Figure(go.Bar(x=groups["group"].astype(str), y=groups[column], marker_color=color,
                           error_y=dict(type="data", array=groups[f"std_{measure}"].fillna(0.0), visible=True),
                           customdata=groups["sessions"],
                           hovertemplate="%{x}: %{y:.3f} (%{customdata} sessions)<extra></extra>"),
                    layout=dict(title=title, **LAYOUT))
    fig.update_xaxes(title="group", type="category")
    fig.update_yaxes(title=measure)
    return fig


def emotion_share_figure(share: pd.DataFrame, title: str = "Emotion share") -> go.Figure:
    """Bar per emotion: share of face observations where it was the dominant one."""
    if share["observations"].sum() == 0:
        return _empty(title, "no emotion results")
    colors = [EMOTION_COLORS[e] for e in share["emotion"]]
    fig = go.Figure(go.Bar(x=share["emotion"], y=share["share"], marker_color=colors,
                           customdata=share["observations"],
                           hovertemplate="%{x}: %{y:.1%} (%{customdata} observations)<extra></extra>"),
                    layout=dict(title=title, **LAYOUT))
    fig.update_yaxes(tickformat=".0%", title="share of observations")
    return fig


def age_histogram_figure(histogram: pd.DataFrame, title: str = "Estimated age") -> go.Figure:
    if histogram.empty:
        return _empty(title, "no age results")
    labels = [f"{a:.0f}–{b:.0f}" for a, b in zip(histogram["age_from"], histogram["age_to"])]
    fig = go.Figure(go.Bar(x=labels, y=histogram["observations"], marker_color="#4c78a8",
                           hovertemplate="%{x} years: %{y} observations<extra></extra>"),
                    layout=dict(title=title, **LAYOUT))
    fig.update_xaxes(title="years", type="category")
    fig.update_yaxes(title="observations")
    return fig


def gender_share_figure(genders: pd.DataFrame, title: str = "Gender share") -> go.Figure:
    if genders["observations"].sum() == 0:
        return _empty(title, "no gender results")
    fig = go.Figure(go.Pie(labels=genders["gender"], values=genders["observations"], hole=0.45, sort=False,
                           marker=dict(colors=[GENDER_COLORS[g] for g in genders["gender"]]),
                           hovertemplate="%{label}: %{percent} (%{value} observations)<extra></extra>"),
                    layout=dict(title=title, **LAYOUT))
    return fig


def live_valence_figure(history, title: str = "Valence, last minute") -> go.Figure:
    """The Live panel's chart: each face's valence over the last minute (``LiveStats.valence_history``)."""
    frame = pd.DataFrame(list(history), columns=["time", "face_id", "valence"])
    if frame.empty:
        return _empty(title, "no emotion results yet")
    frame["ago"] = frame["time"] - frame["time"].max()
    fig = go.Figure(layout=dict(title=title, **dict(LAYOUT, height=220)))
    for face_id, rows in frame.groupby("face_id"):
        fig.add_trace(go.Scatter(x=rows["ago"], y=rows["valence"], name=f"#{face_id}", mode="lines",
                                 hovertemplate=f"#{face_id} %{{y:+.2f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    fig.update_xaxes(title="seconds ago", range=[-60, 0])
    fig.update_yaxes(title="valence", range=[-1, 1])
    fig.update_layout(legend=dict(orientation="h", y=-0.35))
    return fig
