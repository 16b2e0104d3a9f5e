"""The recordings catalog: one row per MixMonitor run (pbx_bridge/recordings/).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("organization", sa.Integer, index=True),
        sa.Column("extension", sa.Text, nullable=False, index=True),
        sa.Column("owner", sa.Integer),
        sa.Column("call_id", sa.Text, nullable=False),
        sa.Column("view_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("file", sa.Text),
        sa.Column("host_path", sa.Text),
        sa.Column("started_by", sa.Text, nullable=False),
        sa.Column("app_id", sa.Text),
        sa.Column("started", sa.Float, nullable=False, index=True),
        sa.Column("stopped", sa.Float),
        sa.Column("paused", sa.Text, nullable=False),
        sa.Column("duration", sa.Float),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
    )
