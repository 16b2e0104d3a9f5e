"""A version row per in-memory cache, bumped by every write that can make it wrong: the
cheap change check of processes that keep the directory and tokens in memory (on
PostgreSQL; on SQLite ``PRAGMA data_version`` tells first whether to read it at all).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    table = op.create_table(
        "cache_versions",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"name": "directory", "version": 0}])
