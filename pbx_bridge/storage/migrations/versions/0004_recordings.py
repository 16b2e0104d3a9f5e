"""The recordings catalog (pbx_bridge/recordings/): one row per MixMonitor run, whoever
started it, kept after the call (state, file, duration, size, SHA-256); the columns as
storage/schema.py describes them. No foreign keys: a row outlives the extension it names.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

from alembic import op
from sqlalchemy import BigInteger, Column, Float, Integer, Text

revision: str = "0004"
down_revision: str | None = "0003"


def _columns() -> tuple[Column[Any], ...]:
    """The columns as they were at this revision (storage/schema.py describes the head);
    new objects on each call: a Column belongs to one Table."""
    return (
        Column("id", Text, primary_key=True),
        Column("organization", Integer, index=True),
        Column("extension", Text, nullable=False, index=True),
        Column("owner", Integer),
        Column("call_id", Text, nullable=False),
        Column("view_id", Text, nullable=False),
        Column("channel", Text, nullable=False),
        Column("format", Text, nullable=False),
        Column("file", Text),
        Column("host_path", Text),
        Column("started_by", Text, nullable=False),
        Column("app_id", Text),
        Column("started", Float, nullable=False, index=True),
        Column("stopped", Float),
        Column("paused", Text, nullable=False),
        Column("duration", Float),
        Column("size", BigInteger),
        Column("sha256", Text),
        Column("state", Text, nullable=False),
            Column("reason", Text),
    )


def upgrade() -> None:
    op.create_table("recordings", *_columns())
