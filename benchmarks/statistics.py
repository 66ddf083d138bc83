"""Statistics page on a one-hour session: ``python -m benchmarks.statistics [--postgres]``.

Seeds one hour at 30 fps with three faces (~300k rows, written through the real
background writer) into a throwaway database, then prints how long each SQL
aggregate takes, how many points the charts receive, the CSV export time, and the
Statistics page's own run time under Streamlit's AppTest (cold, then cached).
With ``--postgres`` the same runs against a private PostgreSQL server (tests/pg.py).
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the seeding helper lives with the tests

from core import export, session_stats  # noqa: E402
from core.store import SessionStore  # noqa: E402


def timed(label: str, fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    print(f"  {label:<34} {1000 * (time.perf_counter() - start):8.1f} ms")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true", help="run against a throwaway PostgreSQL server")
    args = parser.parse_args()
    from seed_sessions import seed_session  # noqa: E402

    home = tempfile.mkdtemp(prefix="facesense-bench-")
    os.environ["FACESENSE_HOME"] = home
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, True)
        if args.postgres:
            from pg import postgres_server

            os.environ["FACESENSE_DB_URL"] = stack.enter_context(postgres_server()).create_database()
        store = SessionStore()
        frames = int(args.minutes * 60 * 30)
        start = time.perf_counter()
        session_id = seed_session(store, frames, n_faces=3, name="one hour, 3 faces")
        seconds = time.perf_counter() - start
        rows = store.get_session(session_id)["row_count"]
        print(f"{store.dialect}: seeded {rows:,} rows ({frames:,} frames) through SessionWriter in {seconds:.1f} s "
              f"({rows / seconds:,.0f} rows/s, generation included)")

        print("aggregates (cold, whole session):")
        timeline = timed("emotion_timeline", session_stats.emotion_timeline, store, session_id)
        timed("emotion_timeline (one face)", session_stats.emotion_timeline, store, session_id, 2)
        counts = timed("face_emotion_counts", session_stats.face_emotion_counts, store, session_id)
        timed("age_histogram", session_stats.age_histogram, store, session_id)
        timed("summary (+ counts again)", session_stats.summary, store, session_id)
        start = time.perf_counter()
        session_stats.emotion_share(counts), session_stats.gender_share(counts)
        session_stats.faces_table(counts, 0.0)
        print(f"  {'shares + faces table from counts':<34} {1000 * (time.perf_counter() - start):8.1f} ms")
        timed("face_ids", store.face_ids, session_id)
        print(f"  timeline points sent to the chart: {len(timeline)} buckets x 7 emotions "
              f"(bucket {timeline.attrs['bucket_s']:.2f} s) instead of {rows:,} rows")

        buffer = io.StringIO()
        start = time.perf_counter()
        count = export.write_frames_csv(store, [session_id], buffer)
        print(f"per-frame CSV export: {count:,} rows, {len(buffer.getvalue()) / 1e6:.1f} MB "
              f"in {time.perf_counter() - start:.1f} s")

        from streamlit.testing.v1 import AppTest

        import streamlit as st

        app = AppTest.from_file(str(REPO_ROOT / "pages" / "statistics.py"), default_timeout=300)
        runs = [("first run (imports + cold caches)", False), ("cold data caches", True), ("rerun, cached", False)]
        for label, clear in runs:
            if clear:
                st.cache_data.clear()
            start = time.perf_counter()
            app.run()
            assert not app.exception, app.exception
            print(f"Statistics page, {label}: {time.perf_counter() - start:.2f} s")
        store.dispose()


if __name__ == "__main__":
    main()
