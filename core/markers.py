"""Event markers from a CSV file (``time_s,label``), for video files analysed after the fact.

A live session's markers are pressed on the Live page and stored at once
(:meth:`core.store.SessionStore.add_marker`); a video's come from a file like::

    time_s,label
    0,instructions
    12.5,screen 2
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

MARKER_CSV_COLUMNS = ("time_s", "label")


class MarkerFileError(ValueError):
    """The markers file is missing, unreadable or has the wrong columns (the message names it)."""


def read_markers_csv(source: str | Path | bytes, name: str | None = None) -> list[tuple[float, str]]:
    """``[(time_s, label), ...]`` in time order from a path or an upload's bytes.

    ``name``: how messages call the file (an upload's original name).
    """
    shown = name or (Path(source).name if not isinstance(source, bytes) else "the markers file")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source).expanduser()
        table = pd.read_csv(handle, dtype={"label": str}, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise MarkerFileError(f"markers file not found: {shown}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise MarkerFileError(f"{shown} is not a readable CSV file ({type(exc).__name__})") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in MARKER_CSV_COLUMNS if c not in table.columns]
    if missing:
        raise MarkerFileError(f"{shown} needs the columns time_s,label; it has {', '.join(table.columns) or 'none'} "
                              f"(missing: {', '.join(missing)})")
    markers = []
    for line, (time_s, label) in enumerate(zip(table["time_s"], table["label"]), start=2):
        try:
            seconds = float(time_s)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise MarkerFileError(f"{shown}, line {line}: time_s must be a number of seconds >= 0, not {time_s!r}")
        label = "" if pd.isna(label) else str(label).strip()
        if not label:
            raise MarkerFileError(f"{shown}, line {line}: the marker at {seconds:g} s has no label")
        markers.append((seconds, label))
    return sorted(markers, key=lambda m: m[0])
