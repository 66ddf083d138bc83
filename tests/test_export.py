"""CSV export: exact columns, row counts, ISO 8601 timestamps, pandas round trip, the CLI."""
import core  # noqa: F401  (first: safe native-library import order)

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from core import export
from core.config import EMOTIONS
from core.session_stats import summary
from core.store import SessionStore
from seed_sessions import seed_session

REPO_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2025, 6, 2, 14, 0, 0, tzinfo=timezone.utc)
ODD_NAME = 'Room "B", 2nd floor\nTuesday ✓'


@pytest.fixture
def seeded() -> tuple[SessionStore, int, int]:
    store = SessionStore()
    a = seed_session(store, 150, n_faces=3, name=ODD_NAME, start=START)  # face 3 away for frames 60..89
    b = seed_session(store, 40, n_faces=1, name="short", start=START.replace(hour=15), seed=1)
    return store, a, b


def read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), keep_default_na=True)


def test_frames_csv_columns_rows_and_values(seeded):
    store, a, _ = seeded
    table = read_csv(export.frames_csv_bytes(store, [a]))
    assert list(table.columns) == list(export.FRAME_COLUMNS)
    assert len(table) == 150 * 3 - 30 == len(store.results(a))
    assert (table["session_id"] == a).all() and (table["session_name"] == ODD_NAME).all()

    stamps = pd.to_datetime(table["timestamp"], format="ISO8601", utc=True)
    assert table["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00").all()
    assert stamps.iloc[0] == pd.Timestamp(START)
    db = store.results(a)
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    assert seconds == pytest.approx(db["timestamp"].to_numpy(), abs=1e-3)
    assert table["elapsed_s"].iloc[-1] == pytest.approx(149 / 30, abs=1e-3)

    probs = table[[f"p_{e}" for e in EMOTIONS]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-3)
    assert (table["dominant_emotion"] == probs.idxmax(axis=1).str[2:]).all()
    assert table["face_id"].value_counts().sort_index().tolist() == [150, 150, 120]
    assert ((table["p_female"] >= 0.5) == (table["gender"] == "female")).all()
    assert table["age"].to_numpy() == pytest.approx(db["age"].to_numpy(), abs=0.006)


def test_frames_csv_of_two_sessions_has_one_header(seeded):
    store, a, b = seeded
    buffer = io.StringIO()
    count = export.write_frames_csv(store, [a, b], buffer)
    text = buffer.getvalue()
    assert count == 420 + 40
    assert text.count("session_id,session_name,timestamp") == 1
    table = pd.read_csv(io.StringIO(text))
    assert table.groupby("session_id").size().to_dict() == {a: 420, b: 40}


def test_empty_session_exports_header_only():
    store = SessionStore()
    sid = store.start_session("nothing seen", "webcam", {}, {})
    store.end_session(sid)
    table = read_csv(export.frames_csv_bytes(store, [sid]))
    assert list(table.columns) == list(export.FRAME_COLUMNS) and table.empty
    row = read_csv(export.summary_csv_bytes(store, [sid])).iloc[0]
    assert row["observations"] == 0 and pd.isna(row["dominant_emotion"]) and pd.isna(row["mean_age"])


def test_summary_csv(seeded):
    store, a, b = seeded
    table = read_csv(export.summary_csv_bytes(store, [a, b]))
    assert list(table.columns) == list(export.SUMMARY_COLUMNS) and len(table) == 2
    row = table.set_index("session_id").loc[a]
    expected = summary(store, a)
    assert row["session_name"] == ODD_NAME and row["status"] == "ended"
    assert (row["frames"], row["observations"], row["faces"]) == (150, 420, 3)
    assert row["duration_s"] == pytest.approx(5.0)
    assert pd.Timestamp(row["started_at"]) == pd.Timestamp(START)
    assert row["dominant_emotion"] == expected.dominant_emotion
    assert sum(row[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-4)
    assert row["mean_age"] == pytest.approx(expected.mean_age, abs=0.01)
    assert json.loads(row["model_versions"])["emotion"] == "synthetic"


def test_cli_writes_files_and_rejects_unknown_sessions(seeded, tmp_path, facesense_home, capsys):
    store, a, b = seeded
    out = tmp_path / "odd name, é.csv"
    assert export.main(["--session", str(a), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 420
    assert export.main(["--all", "--summary", "--out", str(tmp_path / "s.csv")]) == 0
    assert sorted(pd.read_csv(tmp_path / "s.csv")["session_id"]) == sorted([a, b])
    assert export.main(["--session", "999", "--out", str(tmp_path / "x.csv")]) == 2
    assert "no session with id 999" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_cli_as_a_module(seeded, tmp_path, facesense_home):
    _, _, b = seeded
    out = tmp_path / "b.csv"
    run = subprocess.run([sys.executable, "-m", "core.export", "--session", str(b), "--out", str(out)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, FACESENSE_HOME=str(facesense_home)))
    assert run.returncode == 0, run.stderr
    assert "wrote 40 frame rows of 1 session(s)" in run.stderr
    assert list(pd.read_csv(out).columns) == list(export.FRAME_COLUMNS)
