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


def emotion_timeline_figure(timeline: pd.DataFrame, emotions: list[str] | None = None,
                            title: str = "Emotion over time") -> go.Figure:
    """One line per emotion: mean probability per time bucket (already smoothed by the caller)."""
    if timeline.empty:
        return _empty(title, "no emotion results")
    x, x_title = time_axis(timeline["t_s"], float(timeline["t_s"].max()))
    fig = go.Figure(layout=dict(title=title, **LAYOUT))
    for emotion in emotions or EMOTIONS:
        fig.add_trace(go.Scatter(x=x, y=timeline[emotion], name=emotion, mode="lines",
                                 line=dict(color=EMOTION_COLORS[emotion], width=2),
                                 hovertemplate=f"{emotion} %{{y:.0%}}<extra></extra>"))
    fig.update_layout(hovermode="x unified", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title="probability", range=[0, 1], tickformat=".0%")
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
