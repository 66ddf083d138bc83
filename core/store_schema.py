"""Tables of the session store and the code that creates or upgrades them.

One schema serves SQLite (the default file) and PostgreSQL (a shared
deployment), so only portable SQLAlchemy types are used. Session times are
kept as naive UTC ``DateTime`` (returned tz-aware); per-frame timestamps are
UTC seconds since the epoch in a DOUBLE, which keeps the per-face table small
and lets time bucketing run as plain arithmetic inside the database.

Upgrades are additive: tables and nullable/defaulted columns that a newer
version adds are created on open, and ``MIGRATIONS`` holds any step that needs
more than that. ``facesense_meta.schema_version`` records where a database is.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.config import EMOTIONS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SOURCES = ("webcam", "video")
EMOTION_COLUMNS = tuple(f"p_{name}" for name in EMOTIONS)
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
POSE_COLUMNS = ("yaw", "pitch", "roll")  # degrees, from the detector's landmarks (core.pose)


class UTCDateTime(sa.types.TypeDecorator):
    """Stores UTC without a zone (portable), returns aware UTC datetimes.

    Naive inputs are taken as local time, as ``datetime.astimezone`` does.
    """

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

meta = sa.Table(
    "facesense_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # webcam | video
    sa.Column("source_path", sa.Text, nullable=True),  # the video file, when source == video
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),  # NULL while recording
    sa.Column("ended_abnormally", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("model_versions", sa.JSON, nullable=False),
    # Running totals kept by the writer so listing sessions never scans results.
    sa.Column("frame_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("face_frame_count", sa.Integer, nullable=False, server_default="0"),  # frames with >= 1 face
    sa.Column("row_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_frame_at", sa.Double, nullable=True),  # epoch s of the newest frame written
    sa.Column("heartbeat_at", sa.Double, nullable=True),  # epoch s the owning writer last checked in
    # added for studies; NULL in sessions written before
    sa.Column("participant", sa.String(200), nullable=True),  # who was recorded (a label, e.g. "P07")
    sa.Column("tags", sa.JSON, nullable=True),  # free key=value labels, e.g. {"condition": "A"}
    sa.Column("batch", sa.String(200), nullable=True),  # the batch run (core.batch) the session came from
    sa.Column("source_hash", sa.String(64), nullable=True),  # SHA-256 of the video file's content
    sa.Column("baseline", sa.JSON, nullable=True),  # the neutral baseline chosen (core.study)
    sa.CheckConstraint("source IN ('webcam', 'video')", name="ck_sessions_source"),
)

results = sa.Table(
    "frame_results",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),  # UTC seconds since the epoch
    sa.Column("frame_index", sa.Integer, nullable=False),
    sa.Column("face_id", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Integer, nullable=False) for name in BOX_COLUMNS),
    *(sa.Column(name, sa.Float, nullable=True) for name in EMOTION_COLUMNS),
    sa.Column("dominant_emotion", sa.String(16), nullable=True),
    sa.Column("age", sa.Float, nullable=True),
    sa.Column("p_female", sa.Float, nullable=True),
    # added with the CNN detector; NULL in rows written before it, or by a detector without them
    sa.Column("detector_confidence", sa.Float, nullable=True),
    *(sa.Column(name, sa.Float, nullable=True) for name in POSE_COLUMNS),
    sa.Index("ix_frame_results_session_time", "session_id", "timestamp"),
)

markers = sa.Table(
    "markers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),  # UTC seconds since the epoch, like frame_results
    sa.Column("label", sa.String(200), nullable=False),
    sa.Index("ix_markers_session_time", "session_id", "timestamp"),
)

# version -> step that brings a database from version-1 to version (beyond additive changes).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def _add_missing_columns(conn: Connection) -> list[str]:
    """ALTER TABLE ADD COLUMN for every column the code has and the database lacks."""
    inspector = sa.inspect(conn)
    added = []
    for table in metadata.sorted_tables:
        existing = {col["name"] for col in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            if not column.nullable and column.server_default is None:
                raise RuntimeError(f"cannot add NOT NULL column {table.name}.{column.name} without a default")
            spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {spec}"))
            added.append(f"{table.name}.{column.name}")
    return added


def schema_version(conn: Connection) -> int:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def ensure_schema(engine: Engine) -> None:
    """Create the tables on first use and bring an older database up to ``SCHEMA_VERSION``."""
    for attempt in range(3):  # two processes opening a fresh database at once may race
        try:
            with engine.begin() as conn:
                metadata.create_all(conn)
                added = _add_missing_columns(conn)
                if added:
                    log.info("session store: added columns %s", added)
                current = schema_version(conn)
                if current > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"database schema version {current} is newer than this FaceSense ({SCHEMA_VERSION}); "
                        "upgrade FaceSense"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    if version in MIGRATIONS:
                        log.info("session store: migrating to schema version %d", version)
                        MIGRATIONS[version](conn)
                if current != SCHEMA_VERSION:
                    conn.execute(sa.delete(meta).where(meta.c.key == "schema_version"))
                    conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            if attempt == 2:
                raise
            log.info("session store: schema creation raced another process, retrying")
